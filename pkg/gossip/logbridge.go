package gossip

import (
	"bytes"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Rejection reasons, the values of the "reason" label of
// ringmesh_gossip_rejected_total.
const (
	// ReasonKey: traffic that could not be decrypted with our keyring, or
	// plaintext traffic while encryption is on (wrong or missing key).
	ReasonKey = "key"
	// ReasonLabel: traffic carrying another cluster label.
	ReasonLabel = "label"
	// ReasonConflict: a node claims a name that a live member holds at a
	// different address.
	ReasonConflict = "conflict"
)

// How often one kind of problem from one remote IP is logged; in between
// occurrences are only counted.
const (
	rejectLogEvery = 5 * time.Minute
	dropLogEvery   = time.Minute
	limiterMaxKeys = 4096
)

// limiter lets one log line per key through per interval and counts what it
// held back.
type limiter struct {
	mu   sync.Mutex
	now  func() time.Time
	last map[string]limiterEntry
}

type limiterEntry struct {
	at         time.Time
	suppressed int
}

func newLimiter() *limiter {
	return &limiter{now: time.Now, last: make(map[string]limiterEntry)}
}

// allow reports whether a line for key may be logged now, and how many were
// suppressed since the last one that was.
func (l *limiter) allow(key string, every time.Duration) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e, seen := l.last[key]
	if seen && now.Sub(e.at) < every {
		e.suppressed++
		l.last[key] = e
		return false, 0
	}
	if !seen && len(l.last) >= limiterMaxKeys {
		// Bound memory under a flood of distinct sources: forget expired
		// keys, and if that is not enough, everything.
		for k, v := range l.last {
			if now.Sub(v.at) >= every {
				delete(l.last, k)
			}
		}
		if len(l.last) >= limiterMaxKeys {
			clear(l.last)
		}
	}
	l.last[key] = limiterEntry{at: now}
	return true, e.suppressed
}

// Patterns of memberlist v0.7.0 log lines (net.go, state.go, security.go).
var (
	// "[ERR] memberlist: Decrypt packet failed: ... from=1.2.3.4:7946"
	// "[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=..."
	keyErrRE = regexp.MustCompile(`no installed keys could decrypt the message|Decrypt packet failed|encryption is configured but remote state is not encrypted|remote state is encrypted and encryption is not configured`)
	// "[ERR] memberlist: discarding stream with unacceptable label \"x\": from=..."
	labelErrRE = regexp.MustCompile(`discarding (?:stream|packet) with unacceptable label ("(?:[^"\\]|\\.)*")`)
	// "[INFO] memberlist: Suspect node-1 has failed, no acks received"
	suspectRE = regexp.MustCompile(`Suspect (\S+) has failed, no acks received`)
	fromRE    = regexp.MustCompile(`from=(\S+)`)
	levelRE   = regexp.MustCompile(`^\[(DEBUG|INFO|WARN|ERR|ERROR)\]\s*`)
)

// logSink receives what the log bridge recognises in memberlist's output.
type logSink interface {
	// rejected is called for every rejected packet or stream from remote
	// (an IP:port, or "" when unknown); detail is memberlist's message.
	rejected(reason, remote, detail string)
	// suspected is called when our own probe of node failed.
	suspected(node string)
}

// logBridge is an io.Writer for memberlist's *log.Logger: it turns each
// "[LEVEL] memberlist: message" line into a zerolog event at that level,
// and hands key and label rejections and suspicions to the sink instead.
type logBridge struct {
	log  zerolog.Logger
	sink logSink
}

// Write implements io.Writer. log.Logger calls it once per line.
func (b *logBridge) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(p, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) > 0 {
			b.line(string(line))
		}
	}
	return len(p), nil
}

func (b *logBridge) line(s string) {
	level := zerolog.InfoLevel
	if m := levelRE.FindStringSubmatch(s); m != nil {
		switch m[1] {
		case "DEBUG":
			level = zerolog.DebugLevel
		case "INFO":
			level = zerolog.InfoLevel
		case "WARN":
			level = zerolog.WarnLevel
		default:
			level = zerolog.ErrorLevel
		}
		s = s[len(m[0]):]
	} else if strings.HasPrefix(s, "Err:") {
		level = zerolog.ErrorLevel
	}
	s = strings.TrimPrefix(s, "memberlist: ")

	hasFrom := strings.Contains(s, "from=")
	isSuspect := strings.HasPrefix(s, "Suspect ")
	if level < b.log.GetLevel() && !hasFrom && !isSuspect {
		return // fast path: nothing to classify and not logged
	}

	// Inbound rejections carry "from=<addr>"; outbound failures (our own
	// join attempts) do not and are reported by Member.Join instead.
	if from := fromRE.FindStringSubmatch(s); hasFrom && from != nil {
		switch {
		case keyErrRE.MatchString(s):
			b.sink.rejected(ReasonKey, from[1], s)
			return
		case labelErrRE.MatchString(s):
			b.sink.rejected(ReasonLabel, from[1], s)
			return
		}
	}
	if strings.HasPrefix(s, "Conflicting address for ") {
		// Counted and logged (rate-limited) by the ConflictDelegate; the
		// raw line repeats for every alive message and would flood.
		level = zerolog.DebugLevel
	}
	if isSuspect {
		if m := suspectRE.FindStringSubmatch(s); m != nil {
			b.sink.suspected(m[1])
		}
	}
	b.log.WithLevel(level).Msg(s)
}

// remoteIP returns the IP part of an "ip:port" address (the port of inbound
// streams is ephemeral, so rate limiting is per IP).
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// labelOf extracts the quoted remote label of a label rejection line.
func labelOf(detail string) string {
	m := labelErrRE.FindStringSubmatch(detail)
	if m == nil {
		return ""
	}
	if l, err := strconv.Unquote(m[1]); err == nil {
		return l
	}
	return m[1]
}
