package gossip

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	t.Parallel()
	in := Meta{Role: "agent", Provider: "vast", AgentVersion: "0.3.1+g1234abc"}
	b, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"v":1,"r":"agent","p":"vast","av":"0.3.1+g1234abc"}` {
		t.Errorf("wire form %s", b)
	}
	out, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	in.Version = MetaVersion
	if out != in {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}

	// Zero meta still carries a version.
	b, _ = Meta{}.Encode()
	if out, err := DecodeMeta(b); err != nil || out.Version != MetaVersion {
		t.Errorf("empty meta: %s -> %+v, %v", b, out, err)
	}
	// An explicit (newer) version is kept.
	b, _ = Meta{Version: 3, Role: "x"}.Encode()
	if out, _ := DecodeMeta(b); out.Version != 3 {
		t.Errorf("version not kept: %+v", out)
	}
}

func TestDecodeMetaToleratesNewerFields(t *testing.T) {
	t.Parallel()
	out, err := DecodeMeta([]byte(`{"v":2,"r":"agent","p":"runpod","av":"9.9","gpu":{"n":8,"m":"H100"},"z":[1,2]}`))
	if err != nil {
		t.Fatal(err)
	}
	if out != (Meta{Version: 2, Role: "agent", Provider: "runpod", AgentVersion: "9.9"}) {
		t.Errorf("got %+v", out)
	}
}

func TestDecodeMetaRejectsGarbage(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"empty":       "",
		"not json":    "\x00\x01binary",
		"array":       `[1,2,3]`,
		"string":      `"agent"`,
		"truncated":   `{"v":1,"r":"ag`,
		"trailing":    `{"v":1} {"v":2}`,
		"no version":  `{"r":"agent"}`,
		"zero vsn":    `{"v":0,"r":"agent"}`,
		"wrong types": `{"v":"one"}`,
		"vsn range":   `{"v":300}`,
		"too long":    `{"v":1,"r":"` + strings.Repeat("x", 600) + `"}`,
		// Written by any member, shown by meshctl members and logged.
		"escape in version": `{"v":1,"r":"agent","av":"v1\u001b]0;owned\u0007"}`,
		"newline in role":   `{"v":1,"r":"agent\nHost *"}`,
		"space in provider": `{"v":1,"r":"agent","p":"vast ; rm"}`,
		"long role":         `{"v":1,"r":"` + strings.Repeat("a", 33) + `"}`,
		"quote in token":    `{"v":1,"r":"agent","t":"a\"b"}`,
	} {
		if out, err := DecodeMeta([]byte(in)); err == nil {
			t.Errorf("%s: decoded %+v", name, out)
		}
	}
}

func TestMetaTooLarge(t *testing.T) {
	t.Parallel()
	// 512 bytes exactly is fine; one more is not.
	overhead := len(`{"v":1,"av":""}`)
	ok := Meta{AgentVersion: strings.Repeat("a", MetaMaxSize-overhead)}
	if b, err := ok.Encode(); err != nil || len(b) != MetaMaxSize {
		t.Fatalf("512-byte meta: %d bytes, %v", len(b), err)
	}
	big := Meta{AgentVersion: strings.Repeat("a", MetaMaxSize-overhead+1)}
	_, err := big.Encode()
	if err == nil || err.Error() != "gossip: node meta is 513 bytes, limit 512" {
		t.Fatalf("Encode = %v", err)
	}
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Error("error does not wrap ErrMetaTooLarge")
	}
}

// gossipview repeats memberlist's metadata limit so that it does not link
// memberlist; the two must agree.
func TestMetaMaxSizeIsMemberlists(t *testing.T) {
	if MetaMaxSize != memberlist.MetaMaxSize {
		t.Fatalf("gossipview.MetaMaxSize = %d, memberlist.MetaMaxSize = %d", MetaMaxSize, memberlist.MetaMaxSize)
	}
}
