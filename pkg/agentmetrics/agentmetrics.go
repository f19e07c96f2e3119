// Package agentmetrics exports an agent's own view of its node in the
// Prometheus text format: per-GPU utilisation, memory, temperature, power
// and error counts (named after NVIDIA dcgm-exporter's fields), the
// filesystems of the data paths (named after node_exporter's
// node_filesystem_*), the node's recovery point (RPO) and the depth of its
// outbox.
//
// The numbers come from the agent's latest heartbeat (its latest health
// sample from pkg/health and the RPO measured by pkg/sync) and from the
// outbox, read at scrape time. A value the agent could not measure is
// omitted, never exported as 0: a scrape of a node whose nvidia-smi failed
// has no GPU series at all rather than GPUs that look idle.
//
// Series (all gauges unless named *_total):
//
//	ringmesh_agent_info{node,version}                          1
//	ringmesh_agent_health_sample_timestamp_seconds             Unix time the latest sample was taken
//	ringmesh_agent_gpu_utilization_percent{gpu,uuid,model}     nvidia-smi utilization.gpu (DCGM_FI_DEV_GPU_UTIL), 0..100
//	ringmesh_agent_gpu_memory_used_bytes{gpu,uuid,model}       memory.used (DCGM_FI_DEV_FB_USED), bytes
//	ringmesh_agent_gpu_memory_total_bytes{gpu,uuid,model}      memory.total, bytes
//	ringmesh_agent_gpu_temperature_celsius{gpu,uuid,model}     temperature.gpu (DCGM_FI_DEV_GPU_TEMP)
//	ringmesh_agent_gpu_power_watts{gpu,uuid,model}             power.draw (DCGM_FI_DEV_POWER_USAGE)
//	ringmesh_agent_gpu_ecc_uncorrected_errors_total{...}       ecc.errors.uncorrected.volatile.total (since driver load)
//	ringmesh_agent_gpu_xid_errors_total{...}                   Xid events (omitted: nvidia-smi does not report them)
//	ringmesh_agent_gpu_probe_ok                                1 when nvidia-smi answered (or reported no GPU), 0 when it failed
//	ringmesh_agent_filesystem_avail_bytes{path,fstype}         space available to unprivileged users (statfs f_bavail)
//	ringmesh_agent_filesystem_size_bytes{path,fstype}          filesystem size (statfs f_blocks)
//	ringmesh_agent_rpo_unsynced_bytes                          bytes that exist only on this node
//	ringmesh_agent_rpo_unsynced_files                          files that exist only on this node
//	ringmesh_agent_rpo_oldest_unsynced_seconds                 age of the oldest unsynced file
//	ringmesh_agent_outbox_messages                             events queued for the bus
//	ringmesh_agent_outbox_bytes                                their payload bytes
//
// Label values reach Grafana and alert text, and come from nvidia-smi and
// the configuration, so they are checked against a pattern first: a GPU
// UUID or model name that does not match is exported as "" (unknown), and
// a data path that does not match is not exported at all.
package agentmetrics

import (
	"regexp"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/health"
)

// Source is what the collector reads at scrape time; *agent.Agent implements it.
type Source interface {
	// LatestHeartbeat returns the last heartbeat the agent built (health
	// sample and RPO); ok is false before the first one.
	LatestHeartbeat() (hb events.Heartbeat, ok bool)
	// Outbox returns the number of queued events and their payload bytes.
	Outbox() (count int, bytes int64)
}

// Label patterns. nvidia-smi prints UUIDs as GPU-<hex and dashes> (MIG
// devices as MIG-...), and model names like "NVIDIA H100 80GB HBM3".
var (
	uuidRe   = regexp.MustCompile(`^(GPU|MIG)-[0-9A-Fa-f-]{1,64}$`)
	modelRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._()/+-]{0,63}$`)
	pathRe   = regexp.MustCompile(`^/[A-Za-z0-9._/@+=,-]{0,255}$`)
	fstypeRe = regexp.MustCompile(`^[A-Za-z0-9._/-]{0,32}$`)
	nodeRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	verRe    = regexp.MustCompile(`^[A-Za-z0-9._+-]{0,64}$`)
)

func clean(re *regexp.Regexp, s string) string {
	if re.MatchString(s) {
		return s
	}
	return ""
}

var gpuLabels = []string{"gpu", "uuid", "model"}

var (
	descInfo     = prometheus.NewDesc("ringmesh_agent_info", "Always 1; labels name the node and the agent version.", []string{"node", "version"}, nil)
	descSampleTS = prometheus.NewDesc("ringmesh_agent_health_sample_timestamp_seconds", "Unix time when the latest health sample was taken.", nil, nil)
	descGPUUtil  = prometheus.NewDesc("ringmesh_agent_gpu_utilization_percent", "GPU utilisation (nvidia-smi utilization.gpu, like DCGM_FI_DEV_GPU_UTIL), percent 0..100; absent when unknown.", gpuLabels, nil)
	descGPUMemU  = prometheus.NewDesc("ringmesh_agent_gpu_memory_used_bytes", "GPU framebuffer memory in use (nvidia-smi memory.used), bytes; absent when unknown.", gpuLabels, nil)
	descGPUMemT  = prometheus.NewDesc("ringmesh_agent_gpu_memory_total_bytes", "GPU framebuffer memory size (nvidia-smi memory.total), bytes; absent when unknown.", gpuLabels, nil)
	descGPUTemp  = prometheus.NewDesc("ringmesh_agent_gpu_temperature_celsius", "GPU core temperature (nvidia-smi temperature.gpu), degrees Celsius; absent when unknown.", gpuLabels, nil)
	descGPUPower = prometheus.NewDesc("ringmesh_agent_gpu_power_watts", "GPU board power draw (nvidia-smi power.draw), watts; absent when unknown.", gpuLabels, nil)
	descGPUECC   = prometheus.NewDesc("ringmesh_agent_gpu_ecc_uncorrected_errors_total", "Uncorrected ECC errors since the last driver load (nvidia-smi ecc.errors.uncorrected.volatile.total); absent where ECC is unsupported or off.", gpuLabels, nil)
	descGPUXID   = prometheus.NewDesc("ringmesh_agent_gpu_xid_errors_total", "NVIDIA Xid events; absent while unknown (nvidia-smi does not report them).", gpuLabels, nil)
	descGPUProbe = prometheus.NewDesc("ringmesh_agent_gpu_probe_ok", "1 when the GPU probe worked (nvidia-smi answered, or there is no NVIDIA GPU), 0 when nvidia-smi failed.", nil, nil)
	descFSAvail  = prometheus.NewDesc("ringmesh_agent_filesystem_avail_bytes", "Space available to unprivileged users on the filesystem of a data path (statfs f_bavail, like node_filesystem_avail_bytes), bytes.", []string{"path", "fstype"}, nil)
	descFSSize   = prometheus.NewDesc("ringmesh_agent_filesystem_size_bytes", "Size of the filesystem of a data path (statfs f_blocks, like node_filesystem_size_bytes), bytes.", []string{"path", "fstype"}, nil)
	descRPOBytes = prometheus.NewDesc("ringmesh_agent_rpo_unsynced_bytes", "Bytes that exist only on this node (without enough verified copies); absent when sync is off or not measured yet.", nil, nil)
	descRPOFiles = prometheus.NewDesc("ringmesh_agent_rpo_unsynced_files", "Files that exist only on this node; absent when sync is off or not measured yet.", nil, nil)
	descRPOAge   = prometheus.NewDesc("ringmesh_agent_rpo_oldest_unsynced_seconds", "Age of the oldest file that exists only on this node, seconds; absent when sync is off or not measured yet.", nil, nil)
	descOutboxN  = prometheus.NewDesc("ringmesh_agent_outbox_messages", "Events queued in the agent's disk-backed outbox, not yet acknowledged by the bus.", nil, nil)
	descOutboxB  = prometheus.NewDesc("ringmesh_agent_outbox_bytes", "Payload bytes of the events queued in the outbox.", nil, nil)
)

var allDescs = []*prometheus.Desc{descInfo, descSampleTS, descGPUUtil, descGPUMemU, descGPUMemT, descGPUTemp, descGPUPower,
	descGPUECC, descGPUXID, descGPUProbe, descFSAvail, descFSSize, descRPOBytes, descRPOFiles, descRPOAge, descOutboxN, descOutboxB}

// Collector is a prometheus.Collector over a Source.
type Collector struct {
	src     Source
	node    string
	version string
}

// NewCollector returns a collector reading src at every scrape; node and
// version label ringmesh_agent_info (they are checked against a pattern).
func NewCollector(src Source, node, version string) *Collector {
	return &Collector{src: src, node: clean(nodeRe, node), version: clean(verRe, version)}
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect sends the current values; unknown values are left out.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descInfo, 1, c.node, c.version)
	n, b := c.src.Outbox()
	gauge(descOutboxN, float64(n))
	gauge(descOutboxB, float64(b))
	hb, ok := c.src.LatestHeartbeat()
	if !ok {
		return
	}
	s := hb.Health
	if !s.Time.IsZero() {
		gauge(descSampleTS, float64(s.Time.UnixNano())/1e9)
	}
	switch {
	case s.GPUProbe == health.GPUProbeOK || s.GPUProbe == health.GPUProbeNoGPU:
		gauge(descGPUProbe, 1)
	case s.GPUProbe == health.GPUProbeNotFound || s.GPUProbe == "":
		// No nvidia-smi (CPU node) or not probed: nothing to say.
	default:
		gauge(descGPUProbe, 0)
	}
	seenGPU := map[int]bool{}
	for _, g := range s.GPUs {
		if g.Index < 0 || seenGPU[g.Index] {
			continue // the index is the series' identity: never export two
		}
		seenGPU[g.Index] = true
		l := []string{strconv.Itoa(g.Index), clean(uuidRe, g.UUID), clean(modelRe, g.Name)}
		if g.UtilizationPercent != nil {
			gauge(descGPUUtil, *g.UtilizationPercent, l...)
		}
		if g.MemoryUsedBytes != nil {
			gauge(descGPUMemU, float64(*g.MemoryUsedBytes), l...)
		}
		if g.MemoryTotalBytes != nil {
			gauge(descGPUMemT, float64(*g.MemoryTotalBytes), l...)
		}
		if g.TemperatureC != nil {
			gauge(descGPUTemp, *g.TemperatureC, l...)
		}
		if g.PowerWatts != nil {
			gauge(descGPUPower, *g.PowerWatts, l...)
		}
		if g.ECCErrorsUncorrected != nil {
			ch <- prometheus.MustNewConstMetric(descGPUECC, prometheus.CounterValue, float64(*g.ECCErrorsUncorrected), l...)
		}
		if g.XIDErrors != nil {
			ch <- prometheus.MustNewConstMetric(descGPUXID, prometheus.CounterValue, float64(*g.XIDErrors), l...)
		}
	}
	seenPath := map[string]bool{}
	for _, d := range s.Disks {
		if d.Error != "" || !pathRe.MatchString(d.Path) || seenPath[d.Path] {
			continue
		}
		seenPath[d.Path] = true
		fst := clean(fstypeRe, d.FSType)
		if d.FreeBytes != nil {
			gauge(descFSAvail, float64(*d.FreeBytes), d.Path, fst)
		}
		if d.TotalBytes != nil {
			gauge(descFSSize, float64(*d.TotalBytes), d.Path, fst)
		}
	}
	if hb.RPO.UnsyncedBytes != nil {
		gauge(descRPOBytes, float64(*hb.RPO.UnsyncedBytes))
	}
	if hb.RPO.UnsyncedFiles != nil {
		gauge(descRPOFiles, float64(*hb.RPO.UnsyncedFiles))
	}
	if hb.RPO.OldestUnsyncedSeconds != nil {
		gauge(descRPOAge, *hb.RPO.OldestUnsyncedSeconds)
	}
}
