// Package paths holds the provider path conventions of the seed README and
// the data sub-paths of the original loader, and maps host paths onto an
// injectable root so that tests run on fixture trees (node_exporter style).
//
// Conventions (seed README, "Path Conventions" and provider notes):
//
//	runpod   /workspace/ringrift/ai-service
//	lambda   ~/ringrift/ai-service          (shared NFS at /lambda/nfs/RingRift)
//	vast     ~/ringrift/ai-service or /workspace/ringrift/ai-service, whichever exists on the node
//	vultr    /root/ringrift/ai-service
//	hetzner  /root/ringrift/ai-service
//	nebius   ~/ringrift/ai-service
//
// A host's ringrift_path overrides the convention. Remote paths keep their
// "~" because the home directory differs per host (root vs ubuntu).
package paths

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Well-known paths.
const (
	HomeRingrift      = "~/ringrift/ai-service"
	WorkspaceRingrift = "/workspace/ringrift/ai-service"
	RootRingrift      = "/root/ringrift/ai-service"
	LambdaNFS         = "/lambda/nfs/RingRift"
)

// Convention returns the provider's ringrift path as the seed README states
// it. For Vast, whose nodes use either form, it returns the home form; use
// Resolver.RingriftPath on the node to pick the one that exists.
func Convention(provider string) string {
	switch provider {
	case "runpod":
		return WorkspaceRingrift
	case "vultr", "hetzner":
		return RootRingrift
	default: // lambda, nebius, vast, local, unknown
		return HomeRingrift
	}
}

// Candidates returns the paths a node of the provider may use, in order of preference.
func Candidates(provider string) []string {
	if provider == "vast" {
		return []string{HomeRingrift, WorkspaceRingrift}
	}
	return []string{Convention(provider)}
}

// Kind names a data sub-path.
type Kind string

// Data kinds and their default location below the ringrift path (original loader defaults).
const (
	Games        Kind = "games"         // <rp>/data/games (SQLite game databases)
	TrainingData Kind = "training_data" // <rp>/data/training (NPZ exports)
	Models       Kind = "models"        // <rp>/models
	Checkpoints  Kind = "checkpoints"   // <rp>/checkpoints
	Logs         Kind = "logs"          // <rp>/logs
	SyncIncoming Kind = "sync_incoming" // <rp>/data/sync_incoming
)

var defaults = map[Kind]string{
	Games:        "data/games",
	TrainingData: "data/training",
	Models:       "models",
	Checkpoints:  "checkpoints",
	Logs:         "logs",
	SyncIncoming: "data/sync_incoming",
}

// Kinds lists every data kind in a stable order.
func Kinds() []Kind {
	out := make([]Kind, 0, len(defaults))
	for k := range defaults {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Layout is the resolved set of a host's paths (remote form, "~" kept).
type Layout struct {
	Ringrift string          `json:"ringrift"`
	Source   string          `json:"source"` // "config" (ringrift_path), "convention", "detected"
	Data     map[Kind]string `json:"data"`
	NFS      string          `json:"nfs,omitempty"` // shared filesystem path where the provider has one (Lambda)
}

// For builds a host's layout: override (ringrift_path) wins over the
// provider convention; overrides maps data kinds to explicit paths
// (storage_paths); empty values fall back to the defaults.
func For(provider, override string, overrides map[Kind]string) Layout {
	l := Layout{Ringrift: override, Source: "config"}
	if override == "" {
		l.Ringrift, l.Source = Convention(provider), "convention"
	}
	l.Data = DataPaths(l.Ringrift, overrides)
	if provider == "lambda" {
		l.NFS = LambdaNFS
	}
	return l
}

// DataPaths returns every data kind's path below ringrift, with overrides applied.
func DataPaths(ringrift string, overrides map[Kind]string) map[Kind]string {
	out := make(map[Kind]string, len(defaults))
	for k, rel := range defaults {
		if o := overrides[k]; o != "" {
			out[k] = o
			continue
		}
		out[k] = strings.TrimRight(ringrift, "/") + "/" + rel
	}
	return out
}

// Resolver maps host paths to paths on the local filesystem. Root is
// prepended to every absolute path ("" or "/" = the real root); Home
// replaces a leading "~" (default: $HOME). Tests set Root to a fixture tree.
type Resolver struct {
	Root string
	Home string
}

// Local returns the local filesystem path of a host path.
func (r Resolver) Local(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home := r.Home
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	if r.Root == "" || r.Root == "/" {
		return filepath.Clean(p)
	}
	return filepath.Join(r.Root, p)
}

// Exists reports whether the host path exists under the resolver.
func (r Resolver) Exists(p string) bool {
	_, err := os.Stat(r.Local(p))
	return err == nil
}

// RingriftPath picks this node's ringrift path: the override if set;
// otherwise the first candidate of the provider's conventions that exists
// on the node (Vast: home, then /workspace); if none exists, the convention.
func (r Resolver) RingriftPath(provider, override string) (path, source string) {
	if override != "" {
		return override, "config"
	}
	for _, c := range Candidates(provider) {
		if r.Exists(c) {
			return c, "detected"
		}
	}
	return Convention(provider), "convention"
}

// Layout is For with the ringrift path detected on this node.
func (r Resolver) Layout(provider, override string, overrides map[Kind]string) Layout {
	rp, src := r.RingriftPath(provider, override)
	l := For(provider, rp, overrides)
	l.Source = src
	return l
}
