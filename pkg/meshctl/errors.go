package meshctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
)

// Main runs meshctl with args and returns the process exit code: 0, or 1
// after printing the error. With --json the error is printed to out as
// {"error": "..."} (so that a script reading the JSON output sees it),
// otherwise to errOut as "meshctl: ...".
func Main(args []string, out, errOut io.Writer) int {
	root := NewRoot(out, errOut)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	jsonOut := false
	if f := root.PersistentFlags().Lookup("json"); f != nil && f.Changed {
		jsonOut = f.Value.String() == "true"
	} else {
		jsonOut = wantsJSON(args) // the flags did not parse: look for --json ourselves
	}
	var rep reportedError
	if jsonOut && errors.As(err, &rep) {
		return 1 // the JSON output already says what failed
	}
	PrintError(out, errOut, err, jsonOut)
	return 1
}

// reportedError is a failure the command's own JSON output already
// describes (e.g. enroll's per-node results): with --json, Main exits 1
// without printing a second JSON document.
type reportedError struct{ error }

// PrintError prints err as {"error": "..."} to out when jsonOut, else as
// "meshctl: ..." to errOut.
func PrintError(out, errOut io.Writer, err error, jsonOut bool) {
	if jsonOut {
		b, _ := json.Marshal(struct {
			Error string `json:"error"`
		}{err.Error()})
		fmt.Fprintln(out, string(b))
		return
	}
	fmt.Fprintln(errOut, "meshctl:", err)
}

func wantsJSON(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--json" || a == "--json=true" || a == "--json=1" {
			return true
		}
	}
	return false
}

// defaultNATSListen is the coordinator's default --nats-listen, for hints.
const defaultNATSListen = "127.0.0.1:4222"

// connectError explains a failed connection to --nats-url in the
// operator's terms: nothing answers (coordinator not running, or the wrong
// port), or something answers but is not NATS (the HTTP port, say).
func connectError(urls string, err error) error {
	hosts := hostsOf(urls)
	var ne net.Error
	switch {
	case errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("nothing answers on %s: is the coordinator running? it listens on --nats-listen (default %s); pass its address with --nats-url or $RINGMESH_NATS_URL (%w)",
			hosts, defaultNATSListen, err)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s accepts connections but does not speak NATS within --timeout: is that the coordinator's HTTP port (default 8077)? its NATS port is --nats-listen (default %s) (%w)",
			hosts, defaultNATSListen, err)
	case errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization"):
		return fmt.Errorf("%s refused our credentials: pass operator credentials with --creds or $RINGMESH_CREDS (%w)", hosts, err)
	}
	return fmt.Errorf("connect %s: %w", hosts, err)
}

// hostsOf returns the host:port list of a comma-separated URL list,
// without credentials (they must never reach an error message).
func hostsOf(urls string) string {
	var hs []string
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil || p.Host == "" {
			hs = append(hs, "(unparsable URL)")
			continue
		}
		hs = append(hs, p.Host)
	}
	return strings.Join(hs, ", ")
}
