package clouds

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// BuildProviders: a disabled provider is left out, one without a credential
// is registered as not configured (naming where the credential goes), one
// with a credential is configured, and a retired one refuses mutations.
func TestBuildProvidersFromInventoryAndCredentials(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no credential files
	for _, v := range []string{"VAST_API_KEY", "RUNPOD_API_KEY", "LAMBDA_API_KEY", "VULTR_API_KEY", "HCLOUD_TOKEN", "NEBIUS_IAM_TOKEN"} {
		t.Setenv(v, "")
	}
	t.Setenv("VULTR_API_KEY", "test-vultr-key")
	t.Setenv("LAMBDA_API_KEY", "test-lambda-key")
	off := false
	inv := &config.Inventory{Providers: map[string]config.ProviderSettings{
		mesh.ProviderVast:   {Enabled: &off},
		mesh.ProviderLambda: {Retired: true, Note: "moved off"},
	}}
	reg := BuildProviders(inv, zerolog.Nop(), fleet.BuildOptions{})
	names := strings.Join(reg.Names(), ",")
	if strings.Contains(names, mesh.ProviderVast) {
		t.Errorf("disabled vast registered: %s", names)
	}
	if ok, _, why := reg.Status(mesh.ProviderRunPod); ok || !strings.Contains(why, "RUNPOD_API_KEY") {
		t.Errorf("runpod without a key: configured=%v reason=%q, want not configured naming $RUNPOD_API_KEY", ok, why)
	}
	if ok, retired, why := reg.Status(mesh.ProviderVultr); !ok || retired {
		t.Errorf("vultr with a key: configured=%v retired=%v (%s)", ok, retired, why)
	}
	if ok, retired, why := reg.Status(mesh.ProviderLambda); !ok || !retired || !strings.Contains(why, "marked retired in config: moved off") {
		t.Errorf("retired lambda: configured=%v retired=%v reason=%q", ok, retired, why)
	}
}

// VoterGuard protects every voter by name and by hetzner_id, and nothing else.
func TestVoterGuardCoversVotersByNameAndID(t *testing.T) {
	inv := &config.Inventory{
		Voters: []string{"hetzner-cpu1"},
		Hosts: map[string]*config.Host{
			"hetzner-cpu1": {Name: "hetzner-cpu1", Provider: mesh.ProviderHetzner, HetznerID: "42"},
			"hetzner-cpu2": {Name: "hetzner-cpu2", Provider: mesh.ProviderHetzner, HetznerID: "43"},
		},
	}
	g := VoterGuard(inv)
	if !g.Protected("hetzner-cpu1") || !g.Protected("42") {
		t.Errorf("voter not protected: list %v", g.List())
	}
	if g.Protected("hetzner-cpu2") || g.Protected("43") {
		t.Errorf("non-voter protected: list %v", g.List())
	}
	if VoterGuard(nil).Protected("42") {
		t.Error("nil inventory protects something")
	}
}
