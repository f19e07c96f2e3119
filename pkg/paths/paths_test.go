package paths

import (
	"os"
	"path/filepath"
	"testing"
)

// The seed README's path conventions, exactly.
func TestConventions(t *testing.T) {
	want := map[string]string{
		"runpod":  "/workspace/ringrift/ai-service",
		"lambda":  "~/ringrift/ai-service",
		"vast":    "~/ringrift/ai-service",
		"vultr":   "/root/ringrift/ai-service",
		"hetzner": "/root/ringrift/ai-service",
		"nebius":  "~/ringrift/ai-service",
	}
	for p, w := range want {
		if got := Convention(p); got != w {
			t.Errorf("%s: %q, want %q", p, got, w)
		}
	}
	if For("lambda", "", nil).NFS != "/lambda/nfs/RingRift" {
		t.Error("lambda NFS share")
	}
}

func TestOverrideAndDataPaths(t *testing.T) {
	l := For("runpod", "/data/rr", map[Kind]string{Models: "/models"})
	if l.Ringrift != "/data/rr" || l.Source != "config" {
		t.Fatalf("override: %+v", l)
	}
	want := map[Kind]string{
		Games: "/data/rr/data/games", TrainingData: "/data/rr/data/training", Models: "/models",
		Checkpoints: "/data/rr/checkpoints", Logs: "/data/rr/logs", SyncIncoming: "/data/rr/data/sync_incoming",
	}
	for k, w := range want {
		if l.Data[k] != w {
			t.Errorf("%s: %q, want %q", k, l.Data[k], w)
		}
	}
}

// Vast uses whichever of ~/ringrift and /workspace/ringrift exists on the node.
func TestVastDetectsExistingPath(t *testing.T) {
	root := t.TempDir()
	home := "/root"
	r := Resolver{Root: root, Home: home}
	if p, src := r.RingriftPath("vast", ""); p != HomeRingrift || src != "convention" {
		t.Fatalf("nothing exists: %q %q", p, src)
	}
	if err := os.MkdirAll(filepath.Join(root, "workspace/ringrift/ai-service"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, src := r.RingriftPath("vast", ""); p != WorkspaceRingrift || src != "detected" {
		t.Fatalf("workspace exists: %q %q", p, src)
	}
	if err := os.MkdirAll(filepath.Join(root, "root/ringrift/ai-service"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.RingriftPath("vast", ""); p != HomeRingrift {
		t.Fatalf("both exist: want home first, got %q", p)
	}
	if p, src := r.RingriftPath("vast", "/opt/rr"); p != "/opt/rr" || src != "config" {
		t.Fatalf("override: %q %q", p, src)
	}
	if got := r.Local("~/ringrift/ai-service"); got != filepath.Join(root, "root/ringrift/ai-service") {
		t.Fatalf("Local = %q", got)
	}
}
