// Package meshsync (directory pkg/sync) protects the data of ringmesh nodes:
// it keeps a manifest of the files that matter, picks where copies go,
// moves them over SSH with verification, and flushes what it can when a
// node is about to be preempted.
//
// # Pieces
//
//   - Manifest (agent): scans Sources (class, root, globs, priority),
//     records size, mtime, inode and SHA-256 per file and, per file, the
//     receipts of the targets that hold a verified copy. Rescans are
//     incremental: a file whose size, mtime and inode did not change is not
//     read again. The manifest is a bbolt file in the agent's state
//     directory, so hashes and receipts survive restarts. RPO gives the
//     node's recovery point (unsynced bytes, age in seconds of the oldest
//     unsynced data).
//   - Transport: Push(ctx, LocalFile, Target) (Receipt, error).
//     SFTPTransport (default, pure Go: golang.org/x/crypto/ssh +
//     github.com/pkg/sftp) and RsyncTransport (rsync over the OpenSSH
//     client, for targets where both ends have rsync).
//   - Route (coordinator): pure function choosing targets for a node under
//     the sync_routing policy, with a reason for every candidate.
//     SharedFilesystems reads the mount table to tell which nodes share
//     storage.
//   - Engine (agent): continuous sync loop, SyncNow with progress, and Flush
//     for preemption.
//
// # Receipts
//
// A Receipt is issued only after the target's copy sits under its final
// name and its SHA-256, computed on the target, equals the SHA-256 of the
// bytes read locally. It records the target node, hash, size, time of
// verification, and the local version (size, mtime) it corresponds to. A
// receipt counts for a file (FileEntry.ValidReceipt) only while it matches
// the file's current content: same SHA-256 and size for regular files. A
// file is "unsynced" while fewer than the replication target (default 2)
// valid receipts exist; RPO sums those files. Receipts of a target that was
// terminated are dropped with Manifest.ForgetTarget.
//
// # Databases
//
// SQLite databases (class "db") are never copied live. Each push first
// brings the database's shadow copy up to date (dbShadow, in the state
// directory, kept between cycles): all pages are read in one statement of
// one read transaction through SQLite's sqlite_dbpage table
// (modernc.org/sqlite, pure Go; writers keep going), hashed whole (SHA-256)
// and per page (PageMap: SHA-256 truncated to 128 bits per page), and only
// the pages that differ from the shadow's are written into it. Page 1's
// file-format bytes are set to rollback journal, so the shadow is a
// standalone file. Pages are kept as they are, so page N of the shadow is
// page N of the database. Where sqlite_dbpage is missing, a temporary
// snapshot is made with the online backup API (VACUUM INTO as a fallback),
// set to journal_mode=DELETE and hashed. The receipt records the
// snapshot's SHA-256 and the live database's size and mtime (and those of
// its -wal file, where commits land in WAL mode) observed just before the
// snapshot. A database receipt is valid while the live database still has
// that size and mtime (and -wal size and mtime): versions, not hashes, are
// compared. A database written continuously is snapshotted at most once per
// cycle (or per EngineConfig.DBSnapshotInterval).
//
// Over SFTP a database is synced by its changed pages. A target holds two
// files per database: <name>, always a complete version whose SHA-256 was
// verified on the target, and the spare <name>.next, the version before.
// The agent keeps, per database and target, the page hashes of the versions
// both hold (SFTPOptions.DBStateDir; <state dir>/dbdelta in the agent, one
// file per database and target, ending in its own SHA-256). A push writes
// the pages in which the new snapshot differs from the spare's version into
// the spare (SFTP writes at their offsets, several in flight, under the
// target's bandwidth limit), truncates it to the new size, fsyncs it, and
// verifies it: its whole SHA-256 with sha256sum over exec (8 MiB or more),
// else, while the whole copy was read back and verified within
// SFTPOptions.DBFullVerifyInterval, by reading back only the pages written
// and comparing them with the page map, and otherwise by reading the whole
// copy back (Receipt.VerifiedBy). Then it swaps: hardlink <name> to <name>.prev
// (hardlink@openssh.com), rename <name>.next over <name>
// (posix-rename@openssh.com, atomic), rename <name>.prev to <name>.next. At
// every moment <name> is a verified version; a crash between the steps
// leaves at most an extra <name>.prev, which the next push removes. Since
// the spare is two versions old, a cycle sends the pages changed over the
// last two snapshots.
//
// Anything doubtful makes the push a full copy into a new spare inode
// (the old one is removed first, never truncated: it might be linked
// elsewhere), verified and swapped the same way, never a wrong file: no
// state, a state file that does not check out, a spare of another size or
// page size, a leftover <name>.prev, a spare that does not verify after the
// delta, or a server without the hardlink and posix-rename extensions (then
// every push is a full copy). The state is deleted before the swap and
// written after it, so a crash during the swap also means a full copy. The
// first two pushes of a database to a target are full copies (one for each
// remote file). Receipt.Delta and Receipt.BytesSent tell what a push sent.
// rsync sends its own delta of the whole snapshot to <name>.
//
// The remote copy <name> is a plain SQLite file without -wal/-shm: a restore
// copies it (not <name>.next, which may be half-written) and opens it.
//
// # Upload protocol (SFTP) and partial files
//
// A file goes to <RemoteDir>/<source node>/<source name>/<relative path>. It
// is written to "<name>.partial", with up to 64 write requests in flight.
// If a partial exists, the upload resumes: the local prefix is hashed and
// compared with the partial's hash computed remotely; when they differ (for
// example writes that were in flight when a connection broke left a hole),
// the partial is truncated by one write window (2 MiB) and compared again,
// and failing that the upload starts over. A partial longer than the file is
// discarded. Before sending, free space is checked with statvfs@openssh.com
// where the server offers it; data is fsynced where fsync@openssh.com
// exists. Then the SHA-256 of the partial is computed on the target with
// "sha256sum" over an SSH exec channel for files of 8 MiB or more
// (SFTPOptions.ExecHashMinSize), or by reading the file back over SFTP for
// smaller files (cheaper than a remote process: OpenSSH forks a session and
// a shell per exec) and where exec is not allowed. Only a matching partial is renamed into
// place (posix-rename@openssh.com, atomic; else remove + rename). A final
// file already present with the expected hash is verified and not sent again.
//
// What is left on the target after a failure:
//
//   - connection lost, timeout, cancel, deadline: the partial stays and the
//     next push resumes from it;
//   - checksum mismatch, or the local file changed while it was sent: the
//     partial is removed, nothing is renamed;
//   - target disk full detected by the statvfs pre-check: nothing is
//     written and an existing partial is left as it is (resumable once there
//     is room);
//   - disk full while writing (ENOSPC, or a failed write while statvfs shows
//     less room than needed): the partial is removed, to give the space back
//     at once (targets are often the always-on coordinators, which must not
//     fill up), and the error wraps ErrTargetDiskFull.
//
// rsync is run with --partial-dir=.rsync-partial (never --partial alone,
// which leaves a partial file under the final name), --protect-args and an
// I/O timeout; interrupted transfers are resumed by the next run.
//
// # Host keys
//
// Host keys are always verified; there is no way to turn it off. A Target
// carries a known_hosts file and/or the SHA-256 fingerprint its agent
// reported ("SHA256:...", optionally prefixed with the key type). With a
// fingerprint, the presented key must match it and known_hosts, if given,
// must not contradict it; with known_hosts only, the host must be listed
// with the presented key. Only the host key algorithms that can be checked
// are offered, so a server with several host keys cannot pick another one. A
// refused key fails with ErrHostKeyMismatch or ErrHostKeyUnknown naming the
// target, the presented fingerprint and the expected one. The rsync
// transport verifies the key the same way over a Go connection and then
// gives ssh a one-entry known_hosts with StrictHostKeyChecking=yes.
//
// # Continuous sync and flush
//
// Engine.Run rescans every Interval (5 s by default), pushes files lacking
// valid receipts to the targets assigned by the coordinator (oldest data at
// risk first across all classes, so nothing starves; at most MaxConcurrent
// files at a time, each file's copies to its targets in parallel, with
// per-target bandwidth limits shared by all pushes to that target) and
// records receipts. Between scans Manifest.Watch (inotify) records new and
// changed files within a second, so the RPO never lags behind the disk;
// Manifest.FreshRPO measures it on demand for the safe-to-terminate gate. A
// failing target is backed off exponentially. Engine.Flush stops the loop,
// stats (without hashing) and pushes, within the deadline: a JSON manifest
// of all files and their state first, then one copy of every file that has
// none (manifests, newest checkpoints and models, databases newest first,
// then the rest), then further copies. Files that cannot finish in the time
// left at the measured throughput are not started, so smaller files behind
// them still go. FlushResult lists each file as made (with its receipts) or
// missed (deadline, error, no-target, changed).
package meshsync
