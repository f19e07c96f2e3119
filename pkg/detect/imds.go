package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxIMDSBody caps what a probe reads of a metadata document.
const maxIMDSBody = 1 << 20

// imdsProbe is one metadata service probe.
type imdsProbe struct {
	name string // hint key suffix: "nebius", "hetzner", "vultr"
	run  func(ctx context.Context, c *http.Client, o Options) (Result, error)
}

// imdsProbes in priority order (docs/provider-apis.md §7: Nebius, Hetzner,
// Vultr).
var imdsProbes = []imdsProbe{
	{"nebius", probeNebius},
	{"hetzner", probeHetzner},
	{"vultr", probeVultr},
}

// fromIMDS runs all metadata probes at once and returns the answer of the
// highest-priority probe that succeeded. Without an answer, each probe's
// failure is recorded in hints as "probe.<name>".
func fromIMDS(ctx context.Context, o Options, hints map[string]string) (Result, bool) {
	client := o.HTTPClient
	if client == nil {
		client = newIMDSClient(o.Timeout)
		defer client.CloseIdleConnections()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the lower-priority probes once one answered

	type answer struct {
		r   Result
		err error
	}
	chans := make([]chan answer, len(imdsProbes))
	for i, p := range imdsProbes {
		ch := make(chan answer, 1)
		chans[i] = ch
		go func() {
			pctx, pcancel := context.WithTimeout(ctx, o.Timeout)
			defer pcancel()
			r, err := p.run(pctx, client, o)
			var ne net.Error
			if err != nil && (errors.Is(pctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
				err = fmt.Errorf("no answer within %s", o.Timeout)
			}
			ch <- answer{r, err}
		}()
	}
	failures := map[string]string{}
	for i, p := range imdsProbes {
		a := <-chans[i]
		if a.err == nil {
			return a.r, true
		}
		failures["probe."+p.name] = a.err.Error()
	}
	for k, v := range failures {
		hints[k] = v
	}
	return Result{}, false
}

// newIMDSClient is the default client: no proxy (an HTTP_PROXY in the
// environment must not see metadata requests), no redirects, no idle
// connections kept, and a dial timeout; each request's context bounds the
// rest.
func newIMDSClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       (&net.Dialer{Timeout: timeout}).DialContext,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get fetches url with GET and the given headers, and returns the body of a
// 200 answer (at most maxIMDSBody bytes).
func get(ctx context.Context, c *http.Client, url string, header map[string]string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIMDSBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	if len(body) > maxIMDSBody {
		return nil, fmt.Errorf("GET %s: body over %d bytes", url, maxIMDSBody)
	}
	return body, nil
}

// nebiusInstanceData is the JSON of GET /v1/instance-data (docs/provider-apis.md
// §6/§7; Nebius docs "metadata service").
type nebiusInstanceData struct {
	ID           string `json:"id"`        // "computeinstance-…"
	ParentID     string `json:"parent_id"` // "project-…"
	Name         string `json:"name"`
	Hostname     string `json:"hostname"`
	Platform     string `json:"platform"`
	Preset       string `json:"preset"`
	GPUClusterID string `json:"gpu_cluster_id"`
}

// probeNebius reads <NebiusURL>/v1/instance-data. Nebius answers only GET
// with the header "Metadata: true" (400 without it, 405 for other methods).
func probeNebius(ctx context.Context, c *http.Client, o Options) (Result, error) {
	url := strings.TrimRight(o.NebiusURL, "/") + "/v1/instance-data"
	body, err := get(ctx, c, url, map[string]string{"Metadata": "true"})
	if err != nil {
		return Result{}, err
	}
	var d nebiusInstanceData
	if err := json.Unmarshal(body, &d); err != nil {
		return Result{}, fmt.Errorf("nebius instance-data: %w", err)
	}
	if !strings.HasPrefix(d.ID, "computeinstance-") {
		return Result{}, fmt.Errorf("nebius instance-data: id %q is not a computeinstance", d.ID)
	}
	h := map[string]string{}
	addHint(h, "nebius_parent_id", d.ParentID)
	addHint(h, "nebius_name", d.Name)
	addHint(h, "imds_hostname", d.Hostname)
	addHint(h, "nebius_platform", d.Platform)
	addHint(h, "nebius_preset", d.Preset)
	addHint(h, "nebius_gpu_cluster_id", d.GPUClusterID)
	return Result{Provider: ProviderNebius, InstanceID: d.ID, Source: SourceNebius, Hints: h}, nil
}

// hetznerMetadata is the YAML of GET /hetzner/v1/metadata
// (docs/provider-apis.md §7; Hetzner docs "Server metadata").
type hetznerMetadata struct {
	InstanceID       int64  `yaml:"instance-id"`
	Hostname         string `yaml:"hostname"`
	PublicIPv4       string `yaml:"public-ipv4"`
	Region           string `yaml:"region"`            // network zone, e.g. "eu-central"
	AvailabilityZone string `yaml:"availability-zone"` // datacenter, e.g. "fsn1-dc14"
}

// probeHetzner reads the Hetzner metadata document. The SSH endpoint is the
// public IPv4 on port 22 as root: Hetzner Cloud's default for its images.
func probeHetzner(ctx context.Context, c *http.Client, o Options) (Result, error) {
	body, err := get(ctx, c, o.HetznerURL, nil)
	if err != nil {
		return Result{}, err
	}
	var m hetznerMetadata
	if err := yaml.Unmarshal(body, &m); err != nil {
		return Result{}, fmt.Errorf("hetzner metadata: %s", firstLineOf(err.Error()))
	}
	if m.InstanceID <= 0 {
		return Result{}, errors.New("hetzner metadata: no instance-id")
	}
	r := Result{
		Provider:   ProviderHetzner,
		InstanceID: strconv.FormatInt(m.InstanceID, 10),
		Source:     SourceHetzner,
		Region:     m.Region,
		Hints:      map[string]string{},
	}
	if ip := net.ParseIP(strings.TrimSpace(m.PublicIPv4)); ip != nil {
		r.PublicIP = ip.String()
		r.SSH = []Endpoint{{Kind: EndpointDirect, Host: r.PublicIP, Port: 22, User: "root"}}
	}
	addHint(r.Hints, "imds_hostname", m.Hostname)
	addHint(r.Hints, "availability_zone", m.AvailabilityZone)
	return r, nil
}

// vultrMetadata is the JSON of GET /v1.json (docs/provider-apis.md §7; cloud-init
// helpers/vultr.py).
type vultrMetadata struct {
	InstanceID   flexString `json:"instanceid"`     // legacy numeric SUBID
	InstanceV2ID string     `json:"instance-v2-id"` // API v2 instance UUID
	Hostname     string     `json:"hostname"`
	Region       struct {
		RegionCode  string `json:"regioncode"` // "EWR"
		CountryCode string `json:"countrycode"`
	} `json:"region"`
	Interfaces []struct {
		NetworkType string `json:"network-type"` // "public" | "private"
		IPv4        struct {
			Address string `json:"address"`
		} `json:"ipv4"`
	} `json:"interfaces"`
}

// probeVultr reads the Vultr metadata document. InstanceID is the API v2
// UUID (instance-v2-id), which the Vultr API and the coordinator use; the
// legacy SUBID goes to Hints["vultr_subid"]. Region is the region code in
// lower case, as API v2 spells region ids ("ewr"). SSH: public IPv4, port
// 22, root (Vultr's default).
func probeVultr(ctx context.Context, c *http.Client, o Options) (Result, error) {
	body, err := get(ctx, c, o.VultrURL, map[string]string{"Metadata-Token": "cloudinit"})
	if err != nil {
		return Result{}, err
	}
	var m vultrMetadata
	if err := json.Unmarshal(body, &m); err != nil {
		return Result{}, fmt.Errorf("vultr metadata: %w", err)
	}
	if m.InstanceV2ID == "" && m.InstanceID == "" {
		return Result{}, errors.New("vultr metadata: no instance-v2-id or instanceid")
	}
	r := Result{
		Provider:   ProviderVultr,
		InstanceID: m.InstanceV2ID,
		Source:     SourceVultr,
		Region:     strings.ToLower(m.Region.RegionCode),
		Hints:      map[string]string{},
	}
	for _, itf := range m.Interfaces {
		if itf.NetworkType != "public" {
			continue
		}
		if ip := net.ParseIP(strings.TrimSpace(itf.IPv4.Address)); ip != nil && ip.To4() != nil {
			r.PublicIP = ip.String()
			r.SSH = []Endpoint{{Kind: EndpointDirect, Host: r.PublicIP, Port: 22, User: "root"}}
			break
		}
	}
	addHint(r.Hints, "vultr_subid", string(m.InstanceID))
	addHint(r.Hints, "imds_hostname", m.Hostname)
	addHint(r.Hints, "country_code", m.Region.CountryCode)
	return r, nil
}

// flexString accepts a JSON string or number.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*f = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
