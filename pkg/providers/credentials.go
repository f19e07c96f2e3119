package providers

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CredentialSource documents where a provider's secret is looked up, in order.
type CredentialSource struct {
	Env  string // environment variable, e.g. "VAST_API_KEY"
	File string // file path; "~" expands to $HOME; must not be readable by group/other
}

// DefaultCredentialSources is the one place that says where each cloud's
// credential comes from: the environment variable first, then a file under
// ~/.config/ringmesh/credentials/<provider>.
var DefaultCredentialSources = map[string]CredentialSource{
	"vast":    {Env: "VAST_API_KEY", File: "~/.config/ringmesh/credentials/vast"},
	"runpod":  {Env: "RUNPOD_API_KEY", File: "~/.config/ringmesh/credentials/runpod"},
	"lambda":  {Env: "LAMBDA_API_KEY", File: "~/.config/ringmesh/credentials/lambda"},
	"vultr":   {Env: "VULTR_API_KEY", File: "~/.config/ringmesh/credentials/vultr"},
	"hetzner": {Env: "HCLOUD_TOKEN", File: "~/.config/ringmesh/credentials/hetzner"},
	"nebius":  {Env: "NEBIUS_IAM_TOKEN", File: "~/.config/ringmesh/credentials/nebius"},
}

// ResolveCredential returns the secret for provider from src (or the default
// source when src is zero). It returns an error wrapping ErrNotConfigured when
// neither the variable nor the file holds a value, and a plain error when the
// file exists but is group/other readable. The secret itself never appears in
// an error.
func ResolveCredential(provider string, src CredentialSource) (string, error) {
	if src == (CredentialSource{}) {
		src = DefaultCredentialSources[provider]
	}
	if src.Env != "" {
		if v := strings.TrimSpace(os.Getenv(src.Env)); v != "" {
			return v, nil
		}
	}
	if src.File != "" {
		path := ExpandHome(src.File)
		fi, err := os.Stat(path)
		if err == nil {
			if fi.Mode().Perm()&0o077 != 0 {
				return "", fmt.Errorf("%s credential file %s has mode %v: must not be readable by group or others (chmod 600)", provider, path, fi.Mode().Perm())
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return "", fmt.Errorf("%s credential file %s: %w", provider, path, err)
			}
			if v := strings.TrimSpace(string(b)); v != "" {
				return v, nil
			}
		}
	}
	return "", fmt.Errorf("%s: %w (set $%s or write %s)", provider, ErrNotConfigured, src.Env, src.File)
}

// ExpandHome replaces a leading "~/" with the user's home directory.
func ExpandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}
