package enroll

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// ModulePath is the Go module whose ./cmd/agent SourceBuild builds.
const ModulePath = "github.com/ringmesh/ringmesh"

// versionVar is the linker variable holding the release version.
const versionVar = ModulePath + "/pkg/version.Version"

// Binaries gives the agent binary for a node's architecture ("amd64",
// "arm64"): the local path of a static linux executable and the version it
// reports (what `ringmesh-agent --version` prints second), or "" when
// only the binary itself can tell (it is then asked on the node).
type Binaries interface {
	Binary(ctx context.Context, arch string) (path, version string, err error)
}

// File is one agent binary given by the operator (--agent-binary). Its
// architecture is read from its ELF header, so a binary for the wrong
// machine is refused; its version is not known here (Binary returns "")
// and is asked on the node after the upload (`--version` starts nothing).
type File struct{ Path string }

// Binary returns f.Path when it is a linux ELF executable for arch.
func (f File) Binary(_ context.Context, arch string) (string, string, error) {
	got, err := elfArch(f.Path)
	if err != nil {
		return "", "", fmt.Errorf("--agent-binary %s: %w", f.Path, err)
	}
	if got != arch {
		return "", "", fmt.Errorf("--agent-binary %s is built for %s, the node is %s", f.Path, got, arch)
	}
	return f.Path, "", nil
}

func elfArch(path string) (string, error) {
	ef, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("not a linux executable: %w", err)
	}
	defer ef.Close()
	switch ef.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	}
	return "", fmt.Errorf("unsupported ELF machine %v", ef.Machine)
}

// SourceBuild builds the agent from a ringmesh source tree, once per
// architecture: CGO_ENABLED=0 GOOS=linux GOARCH=<arch> go build -trimpath
// with pkg/version.Version stamped to Version (meshctl's own version, so
// an agent enrolled by this meshctl reports the same one).
type SourceBuild struct {
	// Dir is the module root (holds go.mod of ModulePath).
	Dir string
	// Version is stamped into the binary.
	Version string
	// OutDir receives ringmesh-agent-linux-<arch>.
	OutDir string

	mu    sync.Mutex
	built map[string]string
	errs  map[string]error
}

// FindSourceTree returns the root of the ringmesh module containing dir
// (dir or a parent holding its go.mod), or "" when dir is not inside one.
func FindSourceTree(dir string) string {
	for d := dir; ; {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(first) == "module "+ModulePath {
				if _, err := os.Stat(filepath.Join(d, "cmd", "agent")); err == nil {
					return d
				}
			}
			return ""
		}
		p := filepath.Dir(d)
		if p == d {
			return ""
		}
		d = p
	}
}

// Binary builds (once) and returns the agent for arch.
func (s *SourceBuild) Binary(ctx context.Context, arch string) (string, string, error) {
	if arch != "amd64" && arch != "arm64" {
		return "", "", fmt.Errorf("no agent build for architecture %q", arch)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.built[arch]; ok {
		return p, s.Version, nil
	}
	if err, ok := s.errs[arch]; ok {
		return "", "", err
	}
	if s.built == nil {
		s.built, s.errs = map[string]string{}, map[string]error{}
	}
	out := filepath.Join(s.OutDir, "ringmesh-agent-linux-"+arch)
	if err := os.MkdirAll(s.OutDir, 0o700); err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X "+versionVar+"="+s.Version, "-o", out, "./cmd/agent")
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return "", "", ctx.Err()
		}
		err = fmt.Errorf("build the agent for linux/%s in %s: %v: %s", arch, s.Dir, err, strings.TrimSpace(stderr.String()))
		s.errs[arch] = err
		return "", "", err
	}
	s.built[arch] = out
	return out, s.Version, nil
}
