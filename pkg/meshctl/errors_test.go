package meshctl

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
)

func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Nothing on the port: the hint names the address and the coordinator's
// --nats-listen default; under --json the error is JSON on stdout.
func TestConnectionRefusedHint(t *testing.T) {
	addr := closedPort(t)
	var out, errOut bytes.Buffer
	code := Main([]string{"status", "--nats-url", "nats://alice:s3cret@" + addr, "--timeout", "2s"}, &out, &errOut)
	if code == 0 {
		t.Fatal("exit 0 without a coordinator")
	}
	want := "nothing answers on " + addr + ": is the coordinator running? it listens on --nats-listen (default 127.0.0.1:4222)"
	if !strings.Contains(errOut.String(), want) {
		t.Fatalf("stderr %q lacks %q", errOut.String(), want)
	}
	if strings.Contains(errOut.String(), "s3cret") {
		t.Fatalf("password in the error: %q", errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code = Main([]string{"status", "--json", "--nats-url", "nats://" + addr, "--timeout", "2s"}, &out, &errOut)
	var e struct {
		Error string `json:"error"`
	}
	if code == 0 || json.Unmarshal(out.Bytes(), &e) != nil || !strings.Contains(e.Error, "nothing answers on "+addr) {
		t.Fatalf("--json: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}

// Something that is not NATS (an HTTP port, say) answers.
func TestNotNATSHint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent, like an HTTP server waiting for a request
		}
	}()
	var out, errOut bytes.Buffer
	if code := Main([]string{"audit", "--nats-url", "nats://" + ln.Addr().String(), "--timeout", "1s"}, &out, &errOut); code == 0 {
		t.Fatal("exit 0")
	}
	if !strings.Contains(errOut.String(), "does not speak NATS") || !strings.Contains(errOut.String(), "HTTP port") {
		t.Fatalf("stderr: %q", errOut.String())
	}
}

// Usage errors are JSON too under --json, even when the flags did not parse.
func TestUsageErrorsAsJSON(t *testing.T) {
	for _, args := range [][]string{
		{"audit", "--json", "--no-such-flag"},
		{"audit", "--json", "--node", "bad node;rm"},
		{"audit", "--json", "--limit", "0"},
	} {
		var out, errOut bytes.Buffer
		code := Main(args, &out, &errOut)
		var e map[string]string
		if code == 0 || json.Unmarshal(out.Bytes(), &e) != nil || e["error"] == "" || len(e) != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := Main([]string{"audit", "--limit", "0"}, &out, &errOut); code == 0 || !strings.HasPrefix(errOut.String(), "meshctl: --limit 0") || out.Len() != 0 {
		t.Errorf("plain: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}

func TestCleanCell(t *testing.T) {
	if got := clean("a\x1b[31mred\nnext\tcol", 100); strings.ContainsAny(got, "\x1b\n\t") {
		t.Fatalf("%q", got)
	}
}
