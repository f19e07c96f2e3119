package nebius_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/nebius"
	"github.com/ringmesh/ringmesh/pkg/providers/nebius/nebiusfake"
)

const launchToken = "enroll-tok-3f9a1c7e5b"

func launchOptions() nebius.Options {
	return nebius.Options{SubnetID: "vpcsubnet-e00fake1", ImageFamily: "ubuntu22.04-driverless", BootDiskGiB: 200}
}

func launchRequest(id string) providers.LaunchRequest {
	return providers.LaunchRequest{RequestID: id, Node: "nebius-h100-7",
		Offer: providers.Offer{Provider: "nebius", ID: nebius.OfferID("gpu-h100-sxm", "1gpu-16vcpu-200gb"), Interruptible: true,
			GPUModel: "H100", Price: providers.Price{PerHour: 1.25, Currency: "USD", Source: "config"}},
		StartupScript: "#!/bin/sh\necho joining\n",
		Env:           map[string]string{"RINGMESH_ENROLL_TOKEN": launchToken, "RINGMESH_NODE": "nebius-h100-7"}}
}

func resilient(p providers.Provider) providers.Launcher {
	r := providers.Resilient(p, providers.Policy{BaseDelay: time.Millisecond, CallTimeout: 30 * time.Second}, zerolog.Nop(), nil)
	l, ok := providers.LauncherOf(r)
	if !ok {
		panic("nebius does not launch")
	}
	return l
}

// createCalls returns the logged create invocations.
func createCalls(t *testing.T, f *nebiusfake.Fake) []nebiusfake.Call {
	t.Helper()
	calls, err := f.Calls()
	if err != nil {
		t.Fatal(err)
	}
	var out []nebiusfake.Call
	for _, c := range calls {
		if len(c.Args) >= 3 && c.Args[2] == "create" {
			out = append(out, c)
		}
	}
	return out
}

func instancesOf(t *testing.T, p *nebius.Provider) []providers.Instance {
	t.Helper()
	list, err := p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func TestLaunchCreatesLabelledPreemptibleVM(t *testing.T) {
	p, fake := newFake(t, nebiusfake.Options{}, launchOptions())
	req := launchRequest("nb-1")
	in, err := resilient(p).Launch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if in.ID == "" || in.Name != req.Node || in.Labels[providers.LabelRequestID] != "nb-1" || in.Labels[providers.LabelNode] != req.Node {
		t.Fatalf("instance = %+v", in)
	}
	if !in.Interruptible || !nebius.IsPreemptible(in) || in.GPUModel != "H100" || in.GPUCount != 1 || in.Price != req.Offer.Price {
		t.Errorf("instance facts = %+v", in)
	}

	// What Compute got.
	got, ok, err := fake.Instance(in.ID)
	if err != nil || !ok {
		t.Fatalf("fake has no %s: %v", in.ID, err)
	}
	if got.Metadata.Name != req.Node || got.Metadata.Labels[providers.LabelRequestID] != "nb-1" || got.Spec.Hostname != req.Node ||
		got.Spec.Resources != (nebiusfake.Resources{Platform: "gpu-h100-sxm", Preset: "1gpu-16vcpu-200gb"}) ||
		got.Spec.Preemptible == nil || got.Spec.Preemptible.OnPreemption != "STOP" {
		t.Errorf("created = %+v", got)
	}
	ud, _, err := fake.UserData(in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ud, "#!/bin/sh\n") || !strings.Contains(ud, "export RINGMESH_ENROLL_TOKEN='"+launchToken+"'\n") || !strings.HasSuffix(ud, "echo joining\n") {
		t.Errorf("user data = %q", ud)
	}
	bd, _, err := fake.BootDisk(in.ID)
	if err != nil {
		t.Fatal(err)
	}
	var disk struct {
		AttachMode  string `json:"attach_mode"`
		ManagedDisk struct {
			Name string `json:"name"`
			Spec struct {
				SizeGibibytes     int64  `json:"size_gibibytes"`
				Type              string `json:"type"`
				SourceImageFamily struct {
					ImageFamily string `json:"image_family"`
				} `json:"source_image_family"`
			} `json:"spec"`
		} `json:"managed_disk"`
	}
	if err := json.Unmarshal(bd, &disk); err != nil {
		t.Fatal(err)
	}
	if disk.AttachMode != "READ_WRITE" || disk.ManagedDisk.Name != "nebius-h100-7-boot" || disk.ManagedDisk.Spec.SizeGibibytes != 200 ||
		disk.ManagedDisk.Spec.Type != "NETWORK_SSD" || disk.ManagedDisk.Spec.SourceImageFamily.ImageFamily != "ubuntu22.04-driverless" {
		t.Errorf("boot disk = %s", bd)
	}

	// How it got there: one create, the request in a 0600 file that is gone
	// now, no secret and no script on argv.
	calls := createCalls(t, fake)
	if len(calls) != 1 {
		t.Fatalf("create calls = %d", len(calls))
	}
	args := strings.Join(calls[0].Args, " ")
	if strings.Contains(args, launchToken) || strings.Contains(args, "echo joining") || !strings.Contains(args, "--async") {
		t.Errorf("argv = %q", args)
	}
	if calls[0].InputMode != "0600" {
		t.Errorf("request file mode = %q", calls[0].InputMode)
	}
	file := ""
	for i, a := range calls[0].Args {
		if a == "--file" && i+1 < len(calls[0].Args) {
			file = calls[0].Args[i+1]
		}
	}
	if file == "" {
		t.Fatalf("no --file in %q", args)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("request file %s still there: %v", file, err)
	}

	// The resilient layer's lookup sees the request ID through List.
	if found, ok, err := providers.FindByRequestID(context.Background(), p, "nb-1"); err != nil || !ok || found.ID != in.ID {
		t.Fatalf("FindByRequestID = %+v %v %v", found, ok, err)
	}
	// A repeat of the request finds it and creates nothing.
	again, err := resilient(p).Launch(context.Background(), req)
	if err != nil || again.ID != in.ID || len(createCalls(t, fake)) != 1 {
		t.Fatalf("repeat: %+v %v (creates %d)", again, err, len(createCalls(t, fake)))
	}
}

func TestLaunchOnDemandHasNoPreemptibleSpec(t *testing.T) {
	p, fake := newFake(t, nebiusfake.Options{}, launchOptions())
	req := launchRequest("nb-od")
	req.Offer.Interruptible = false
	req.Image = "computeimage-e00abc123"
	in, err := p.Launch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := fake.Instance(in.ID)
	if err != nil {
		t.Fatal(err)
	}
	bd, _, err := fake.BootDisk(in.ID)
	if err != nil {
		t.Fatal(err)
	}
	var disk struct {
		ManagedDisk struct {
			Spec struct {
				SourceImageID     string          `json:"source_image_id"`
				SourceImageFamily json.RawMessage `json:"source_image_family"`
			} `json:"spec"`
		} `json:"managed_disk"`
	}
	if err := json.Unmarshal(bd, &disk); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Preemptible != nil || in.Interruptible || disk.ManagedDisk.Spec.SourceImageID != "computeimage-e00abc123" ||
		string(disk.ManagedDisk.Spec.SourceImageFamily) != "null" {
		t.Errorf("on-demand launch: spec %+v, instance %+v, boot disk %s", got.Spec, in, bd)
	}
}

func TestLaunchUnknownOutcomeFindsTheInstance(t *testing.T) {
	for _, kind := range []nebiusfake.FaultKind{nebiusfake.Unavailable, nebiusfake.ExitError, nebiusfake.Garbage} {
		t.Run(string(kind), func(t *testing.T) {
			p, fake := newFake(t, nebiusfake.Options{}, launchOptions())
			// Compute makes the VM but the answer is lost.
			if err := fake.Inject(nebiusfake.Fault{Kind: kind, Verb: "create", Count: 1, AfterApply: true}); err != nil {
				t.Fatal(err)
			}
			_, err := p.Launch(context.Background(), launchRequest("nb-2"))
			if err == nil || providers.LaunchNotApplied(err) {
				t.Fatalf("lost answer: %v (not applied %v), want an unknown outcome", err, providers.LaunchNotApplied(err))
			}
			// The resilient layer looks the request ID up and returns the VM,
			// and a retry of the same request creates no second one.
			l := resilient(p)
			in, err := l.Launch(context.Background(), launchRequest("nb-2"))
			if err != nil || in.Labels[providers.LabelRequestID] != "nb-2" {
				t.Fatalf("retry: %+v %v", in, err)
			}
			if n, list := len(createCalls(t, fake)), instancesOf(t, p); n != 1 || len(list) != 1 || list[0].ID != in.ID {
				t.Fatalf("creates %d, instances %+v", n, list)
			}
		})
	}
}

func TestLaunchLostAnswerThroughResilientIsFound(t *testing.T) {
	p, fake := newFake(t, nebiusfake.Options{}, launchOptions())
	if err := fake.Inject(nebiusfake.Fault{Kind: nebiusfake.Unavailable, Verb: "create", Count: 1, AfterApply: true}); err != nil {
		t.Fatal(err)
	}
	in, err := resilient(p).Launch(context.Background(), launchRequest("nb-3"))
	if err != nil || in.ID == "" || in.Labels[providers.LabelNode] != "nebius-h100-7" {
		t.Fatalf("launch = %+v %v", in, err)
	}
	if n := len(createCalls(t, fake)); n != 1 {
		t.Fatalf("creates = %d, want 1", n)
	}
}

func TestLaunchRefusalsAreNotApplied(t *testing.T) {
	cases := []struct {
		name string
		kind nebiusfake.FaultKind // fault on create, before it is applied
		want providers.ErrorKind
	}{
		{"unauthenticated", nebiusfake.AuthError, providers.KindAuth},
		{"resource exhausted", nebiusfake.RateLimit, providers.KindRateLimited},
		{"not found", nebiusfake.NotFound, providers.KindNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, fake := newFake(t, nebiusfake.Options{}, launchOptions())
			if err := fake.Inject(nebiusfake.Fault{Kind: c.kind, Verb: "create", Count: 1}); err != nil {
				t.Fatal(err)
			}
			_, err := p.Launch(context.Background(), launchRequest("nb-4"))
			if providers.KindOf(err) != c.want || !providers.LaunchNotApplied(err) {
				t.Fatalf("err = %v (kind %q, not applied %v)", err, providers.KindOf(err), providers.LaunchNotApplied(err))
			}
			if list := instancesOf(t, p); len(list) != 0 {
				t.Fatalf("instances = %+v", list)
			}
		})
	}

	t.Run("name taken", func(t *testing.T) {
		p, fake := newFake(t, nebiusfake.Options{}, launchOptions())
		if _, err := fake.Seed(nebiusfake.SeedInstance{Name: "nebius-h100-7"}); err != nil {
			t.Fatal(err)
		}
		_, err := resilient(p).Launch(context.Background(), launchRequest("nb-5"))
		if providers.KindOf(err) != providers.KindConflict || !providers.LaunchNotApplied(err) || !strings.Contains(err.Error(), "AlreadyExists") {
			t.Fatalf("err = %v", err)
		}
		if list := instancesOf(t, p); len(list) != 1 {
			t.Fatalf("instances = %d", len(list))
		}
	})

	t.Run("internal error before apply stays unknown", func(t *testing.T) {
		p, fake := newFake(t, nebiusfake.Options{}, launchOptions())
		if err := fake.Inject(nebiusfake.Fault{Kind: nebiusfake.ExitError, Verb: "create", Count: 1}); err != nil {
			t.Fatal(err)
		}
		_, err := p.Launch(context.Background(), launchRequest("nb-6"))
		if err == nil || providers.LaunchNotApplied(err) {
			t.Fatalf("err = %v: an Internal status may follow an applied create", err)
		}
	})
}

func TestLaunchConfigRefusalsSendNothing(t *testing.T) {
	cases := []struct {
		name string
		opts func(*nebius.Options)
		req  func(*providers.LaunchRequest)
		want string
	}{
		{"no subnet", func(o *nebius.Options) { o.SubnetID = "" }, nil, "subnet"},
		{"no image", func(o *nebius.Options) { o.ImageFamily = "" }, nil, "boot image"},
		{"no disk size", func(o *nebius.Options) { o.BootDiskGiB = 0 }, nil, "boot disk size"},
		{"ssh key", nil, func(r *providers.LaunchRequest) { r.SSHKeyName = "ops" }, "SSH key"},
		{"offer id", nil, func(r *providers.LaunchRequest) { r.Offer.ID = "gpu-h100-sxm" }, "<platform>:<preset>"},
		{"image shape", nil, func(r *providers.LaunchRequest) { r.Image = "Ubuntu;rm" }, "image family"},
		{"user data too long", nil, func(r *providers.LaunchRequest) { r.StartupScript = strings.Repeat("#", nebius.MaxUserDataBytes) }, "at most 32768"},
		{"bad request id", nil, func(r *providers.LaunchRequest) { r.RequestID = "-x" }, "request ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := launchOptions()
			if c.opts != nil {
				c.opts(&o)
			}
			p, fake := newFake(t, nebiusfake.Options{}, o)
			req := launchRequest("nb-7")
			if c.req != nil {
				c.req(&req)
			}
			_, err := resilient(p).Launch(context.Background(), req)
			if providers.KindOf(err) != providers.KindInvalid || !providers.LaunchNotApplied(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want invalid naming %q", err, c.want)
			}
			if n := len(createCalls(t, fake)); n != 0 {
				t.Fatalf("creates = %d", n)
			}
		})
	}
}

func TestLaunchStaticModeRefuses(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no nebius CLI
	p, err := nebius.New(nebius.Options{ProjectID: "project-e00fake", SubnetID: "vpcsubnet-e00fake1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Launch(context.Background(), launchRequest("nb-8"))
	if !errors.Is(err, providers.ErrNotConfigured) || !providers.LaunchNotApplied(err) {
		t.Fatalf("err = %v", err)
	}
}
