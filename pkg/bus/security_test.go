package bus

import (
	"strings"
	"testing"
)

func TestRedactRemovesUserInfo(t *testing.T) {
	in := "nats://agent:s3cret@hetzner-cpu1:4222, tls://tok3n@hetzner-cpu2:4222,nats://hetzner-cpu3:4222"
	out := Redact(in)
	for _, secret := range []string{"s3cret", "tok3n", "agent:"} {
		if strings.Contains(out, secret) {
			t.Errorf("Redact(%q) = %q still contains %q", in, out, secret)
		}
	}
	if !strings.Contains(out, "hetzner-cpu3:4222") || !strings.Contains(out, "redacted@hetzner-cpu1:4222") {
		t.Errorf("Redact lost the hosts: %q", out)
	}
	if got := RedactURL("::bad url with pass:word@"); strings.Contains(got, "word") {
		t.Errorf("unparsable URL leaked: %q", got)
	}
}
