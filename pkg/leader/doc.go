// Package leader elects the one acting coordinator among the voters
// (docs/ARCHITECTURE.md §5, §8). The lease is a single key (default "coordinator") in the
// JetStream KV bucket mesh_leader, which pkg/bus creates with History 1 and
// TTL = Topology.LeaderTTL. Only the elector whose IsLeader reports true may
// call mutating provider APIs or issue commands; it should stamp each such
// action with the term from Fence so that the audit trail can apply every
// decision once.
//
// # Protocol
//
// The key holds a JSON Lease {holder, term, acquired, renewed, expires}.
//
//   - Acquire: kv.Create (succeeds only when the key is absent or carries a
//     delete marker). A follower may instead replace an existing value by
//     compare-and-set, kv.Update(key, value, revision), in two cases only:
//     the value names this elector (a restart of the same Name), or this
//     elector has watched that very revision stay unchanged for longer than
//     TTL on its own monotonic clock AND the value's expiry (the holder's
//     wall clock) has passed. The second condition only ever delays a
//     take-over; it is never what makes one safe.
//   - Renew: every RenewEvery, kv.Update(key, value, myRevision). A revision
//     mismatch means another elector wrote the key: step down at once.
//   - Step down (Run's context ends): stop acting first, then delete the key
//     with a revision check, so a follower watching the key takes over at
//     once instead of after TTL. A value of ours whose write reply was lost
//     (request cancelled or timed out) is released the same way.
//   - Term: every acquisition writes term = max(last term seen, last
//     sequence of the bucket's stream) + 1. The stream sequence survives the
//     key's expiry, so terms strictly increase across leaders even when no
//     elector saw the previous value. Terms are not dense.
//
// # Why two leaders never act at once
//
// Let TTL be Config.TTL, M the SafetyMargin, and ρ a bound on how far any
// machine's clock *rate* strays from real time (|dlocal/dreal − 1| ≤ ρ).
// Clocks need not be synchronised: every interval below is measured on one
// machine's monotonic clock, and no machine compares its clock with a
// timestamp written by another.
//
// The leader L reads its clock at a, just before sending a renew (or
// acquire) request, and once that request succeeds, acts only while its
// clock reads less than a + TTL − M: in real time, until at most
// a + (TTL − M)/(1 − ρ). The value that request wrote is stored at some
// real time w ≥ a. A follower F can start acting only after its own write
// succeeded, and that write is possible only
//
//  1. By compare-and-set on a revision r that F first saw at real time
//     f ≥ w(r) ≥ a and then watched unchanged for TTL on its own clock,
//     i.e. at real time ≥ a + TTL/(1 + ρ). (r must be L's last successful
//     write or a later one: CAS on an older revision fails because that
//     write changed it.)
//  2. By Create after the server removed the value. The server removes it
//     either because L deleted it (L stopped acting before deleting), or by
//     the bucket's TTL, counted by the server from w, so at real time
//     ≥ a + TTL/(1 + ρ) as long as the bucket's TTL is not shorter than
//     Config.TTL (Run checks it before acquiring and returns an error
//     otherwise);
//  3. By compare-and-set on a value carrying F's own Name: written by an
//     earlier run of F itself, which no longer acts (names are unique per
//     process), or by F in a term whose window F has already closed.
//
// The windows cannot overlap when (TTL − M)/(1 − ρ) ≤ TTL/(1 + ρ), i.e.
// M ≥ TTL·2ρ/(1 + ρ). The default M = TTL/5 tolerates ρ up to 1/9 (11 %),
// orders of magnitude more than real oscillators (~10⁻⁴) or NTP slewing
// (5·10⁻⁴). Failed or timed-out renews never extend the window, because it
// is anchored at the start of the last renew known to have succeeded; a
// renew whose outcome is unknown can only end the window early.
//
// Limits of the argument, stated rather than hidden:
//   - The server's bucket TTL is counted on the server's wall clock; a step
//     of that clock can expire the value early. As defence in depth, a
//     follower that saw the revision that vanished still waits TTL from
//     when it first saw it before creating the key again.
//   - A leader that is paused (GC, VM stop) between checking IsLeader and
//     the effect of its action landing can act late. Check IsLeader right
//     before each mutating call, keep calls short compared to M, and stamp
//     them with Fence's term so duplicates are detectable.
//   - Someone deleting the key by hand (nats kv del) forces an immediate
//     election while the old leader may still be acting until it notices.
//   - Names must be unique per running process: an elector trusts a value
//     that carries its own Name as its own.
//   - Deleting and recreating the bucket while electors run resets
//     revisions and stream sequences; restart the electors.
package leader
