package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/events"
)

const goodEnroll = `{"token":"rme_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","instance_id":"29129529","provider":"vast","node":"vast-1","public_key":"UAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`

func TestDecodeEnrollRequest(t *testing.T) {
	r, err := DecodeEnrollRequest([]byte(goodEnroll))
	if err != nil || r.Node != "vast-1" || r.InstanceID != "29129529" {
		t.Fatalf("good request: %+v %v", r, err)
	}
	for name, in := range map[string]string{
		"not json":      `rme_x`,
		"array":         `[` + goodEnroll + `]`,
		"unknown field": strings.Replace(goodEnroll, `"node"`, `"admin":true,"node"`, 1),
		"second value":  goodEnroll + ` {}`,
		"bad token":     strings.Replace(goodEnroll, "rme_A", "rme_!", 1),
		"newline node":  strings.Replace(goodEnroll, `"vast-1"`, `"vast-1\nHost *"`, 1),
		"path instance": strings.Replace(goodEnroll, `"29129529"`, `"../../etc"`, 1),
		"seed key":      strings.Replace(goodEnroll, `"UAAAA`, `"SUAAA`, 1),
		"too large":     strings.Replace(goodEnroll, `"vast"`, `"`+strings.Repeat("v", 2000)+`"`, 1),
	} {
		if r, err := DecodeEnrollRequest([]byte(in)); err == nil {
			t.Errorf("%s: accepted %+v", name, r)
		} else if strings.Contains(err.Error(), "rme_AAAA") {
			t.Errorf("%s: the error quotes the token: %v", name, err)
		}
	}
}

// FuzzDecodeEnrollRequest: whatever arrives under the bootstrap
// credential, an accepted request has every field in its pattern and
// survives a round trip unchanged.
func FuzzDecodeEnrollRequest(f *testing.F) {
	f.Add([]byte(goodEnroll))
	f.Add([]byte(`{"token":"rme_x","instance_id":"","public_key":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeEnrollRequest(data)
		if err != nil {
			return
		}
		if !events.Match("enroll_token", r.Token) || !events.Match("instance_id", r.InstanceID) || !events.Match("nkey_user", r.PublicKey) ||
			(r.Node != "" && !events.Match("node", r.Node)) || (r.Provider != "" && !events.Match("node", r.Provider)) {
			t.Fatalf("accepted %+v", r)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeEnrollRequest(b)
		if err != nil || again != r {
			t.Fatalf("round trip: %+v %v, want %+v", again, err, r)
		}
	})
}
