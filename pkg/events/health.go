package events

import "time"

// The health sample types are the body of a heartbeat. pkg/health (which
// takes the samples with gopsutil and nvidia-smi) aliases them, so this
// package stays free of dependencies beyond the standard library. Every
// number has a range and every list a maximum length: the schemas carry the
// same bounds (go generate ./schemas), and the coordinator rejects a
// message outside them.

// HealthSample is one health reading of the host. It is embedded in the agent's
// heartbeat message on the bus, so it is flat and its JSON field names are
// stable (snake_case). Pointer fields are nil (JSON null) when the value
// could not be measured; they are never filled with 0 for "unknown". Slices
// are never nil in a Sample returned by health.Sampler (they encode as [] not
// null). Treat a Sample as read-only: health.Sampler.Latest hands the same slices to
// every caller.
type HealthSample struct {
	// Time is when sampling started (UTC, RFC 3339 in JSON).
	Time time.Time `json:"time"`
	// AgentVersion is the version string of the agent that took the sample
	// (health.Options.AgentVersion).
	AgentVersion string `json:"agent_version" jsonschema:"maxLength=128" pattern:"text"`

	// CPUPercent is the share of CPU time spent busy (not idle, not iowait),
	// 0..100, over all CPUs, averaged over the window since the previous CPU
	// reading (at least health.Options.CPUWindow). Source: /proc/stat via gopsutil
	// cpu.TimesWithContext. Inside a container this is host-wide.
	CPUPercent *float64 `json:"cpu_percent" jsonschema:"minimum=0,maximum=100"`
	// CPUCount is the number of logical CPUs (gopsutil cpu.CountsWithContext,
	// /proc/cpuinfo). Inside a container this is the host's count.
	CPUCount *int `json:"cpu_count" jsonschema:"minimum=0,maximum=65536"`
	// Load1, Load5 and Load15 are the 1/5/15-minute load averages (runnable +
	// uninterruptible tasks; /proc/loadavg via gopsutil load.AvgWithContext).
	Load1  *float64 `json:"load1" jsonschema:"minimum=0,maximum=1000000"`
	Load5  *float64 `json:"load5" jsonschema:"minimum=0,maximum=1000000"`
	Load15 *float64 `json:"load15" jsonschema:"minimum=0,maximum=1000000"`

	// MemTotalBytes is MemTotal of /proc/meminfo, in bytes.
	MemTotalBytes *uint64 `json:"mem_total_bytes" jsonschema:"minimum=0,maximum=1e18"`
	// MemUsedBytes is gopsutil's VirtualMemoryStat.Used, in bytes.
	MemUsedBytes *uint64 `json:"mem_used_bytes" jsonschema:"minimum=0,maximum=1e18"`
	// MemAvailableBytes is MemAvailable of /proc/meminfo (estimated by
	// gopsutil on kernels without it), in bytes.
	MemAvailableBytes *uint64 `json:"mem_available_bytes" jsonschema:"minimum=0,maximum=1e18"`

	// UptimeSeconds is the host's uptime in seconds (first field of
	// <proc>/uptime).
	UptimeSeconds *uint64 `json:"uptime_seconds" jsonschema:"minimum=0,maximum=1e10"`

	// Disks holds one entry per configured data path (health.Options.DiskPaths), in
	// that order.
	Disks []Disk `json:"disks" jsonschema:"maxItems=32"`

	// GPUProbe says how the GPU probe went: health.GPUProbeOK, health.GPUProbeNoGPU,
	// health.GPUProbeNotFound or health.GPUProbeErrorPrefix + reason.
	GPUProbe string `json:"gpu_probe" jsonschema:"maxLength=1024" pattern:"text"`
	// GPUs holds one entry per GPU that nvidia-smi listed, in its order.
	// Empty (never nil) when there are none or the probe failed.
	GPUs []GPU `json:"gpus" jsonschema:"maxItems=64"`

	// Processes holds one entry per watched process name
	// (health.Options.ProcessPatterns), sorted by name.
	Processes []Process `json:"processes" jsonschema:"maxItems=64"`

	// Errors lists the probe failures of this sample as "probe: reason"
	// (e.g. "memory: open /proc/meminfo: no such file or directory",
	// "disk /data: timed out after 5s"). Empty when every probe succeeded.
	Errors []string `json:"errors" jsonschema:"maxItems=64" pattern:"text" maxLength:"1024"`
}

// Disk is the usage of the filesystem holding one data path (statfs(2) via
// gopsutil disk.UsageWithContext; the same numbers df(1) prints).
type Disk struct {
	// Path is the data path as configured.
	Path string `json:"path" jsonschema:"maxLength=1024" pattern:"path"`
	// TotalBytes is the filesystem size in bytes (f_blocks × f_bsize).
	TotalBytes *uint64 `json:"total_bytes" jsonschema:"minimum=0,maximum=1e18"`
	// UsedBytes is the space in use in bytes ((f_blocks − f_bfree) × f_bsize).
	UsedBytes *uint64 `json:"used_bytes" jsonschema:"minimum=0,maximum=1e18"`
	// FreeBytes is the space available to unprivileged users in bytes
	// (f_bavail × f_bsize).
	FreeBytes *uint64 `json:"free_bytes" jsonschema:"minimum=0,maximum=1e18"`
	// UsedPercent is used / (used + free) × 100, as df(1) computes it; nil
	// when the filesystem reports no blocks at all.
	UsedPercent *float64 `json:"used_percent" jsonschema:"minimum=0,maximum=100"`
	// FSType is the filesystem type name from statfs f_type ("ext2/ext3",
	// "xfs", "overlayfs", "nfs", ...; gopsutil's names). Empty when unknown.
	FSType string `json:"fs_type" jsonschema:"maxLength=64" pattern:"text"`
	// Error is why this path could not be measured; empty on success.
	Error string `json:"error" jsonschema:"maxLength=1024" pattern:"text"`
}

// GPU is one NVIDIA GPU as nvidia-smi --query-gpu reports it. Fields that
// nvidia-smi prints as "[N/A]", "[Not Supported]", any other bracketed
// text, or empty are nil (unknown): e.g. ECC on consumer cards.
type GPU struct {
	// Index is nvidia-smi's "index" (0-based enumeration order).
	Index int `json:"index" jsonschema:"minimum=0,maximum=63"`
	// Name is nvidia-smi's "name", e.g. "NVIDIA H100 80GB HBM3".
	Name string `json:"name" jsonschema:"maxLength=128" pattern:"text"`
	// UUID is nvidia-smi's "uuid", e.g. "GPU-5c1f2e3a-...".
	UUID string `json:"uuid" jsonschema:"maxLength=128" pattern:"text"`
	// UtilizationPercent is "utilization.gpu": percent of the last sample
	// period during which a kernel was running, 0..100.
	UtilizationPercent *float64 `json:"utilization_percent" jsonschema:"minimum=0,maximum=100"`
	// MemoryTotalBytes is "memory.total" (MiB in nvidia-smi) in bytes.
	MemoryTotalBytes *uint64 `json:"memory_total_bytes" jsonschema:"minimum=0,maximum=1e15"`
	// MemoryUsedBytes is "memory.used" (MiB in nvidia-smi) in bytes.
	MemoryUsedBytes *uint64 `json:"memory_used_bytes" jsonschema:"minimum=0,maximum=1e15"`
	// TemperatureC is "temperature.gpu", core temperature in degrees Celsius.
	TemperatureC *float64 `json:"temperature_c" jsonschema:"minimum=-100,maximum=300"`
	// PowerWatts is "power.draw", board power draw in watts.
	PowerWatts *float64 `json:"power_watts" jsonschema:"minimum=0,maximum=100000"`
	// ECCErrorsUncorrected is "ecc.errors.uncorrected.volatile.total":
	// uncorrected ECC errors since the last driver load; nil where ECC is not
	// supported or disabled.
	ECCErrorsUncorrected *uint64 `json:"ecc_errors_uncorrected" jsonschema:"minimum=0,maximum=1e15"`
	// XIDErrors would count NVIDIA Xid events; nvidia-smi --query-gpu does
	// not expose them (they appear only in the kernel log as "NVRM: Xid"),
	// so this is always nil for now.
	XIDErrors *uint64 `json:"xid_errors" jsonschema:"minimum=0,maximum=1e15"`
}

// Process says whether a watched process (e.g. "train", "selfplay") runs.
type Process struct {
	// Name is the key of health.Options.ProcessPatterns.
	Name string `json:"name" jsonschema:"maxLength=128" pattern:"text"`
	// Present is true when at least one process command line matched the
	// pattern, false when none did, nil when the process list could not be
	// read (unknown: never reported as absent).
	Present *bool `json:"present"`
	// Count is the number of matching processes; nil when unknown.
	Count *int `json:"count" jsonschema:"minimum=0,maximum=10000000"`
}

// DiskUsedPercent is the one definition of disk usage in ringmesh, used by
// the heartbeat (Disk.UsedPercent), the sync router and the status view:
// used / (used + free) × 100 with used = (f_blocks − f_bfree) × f_bsize and
// free = f_bavail × f_bsize, as df(1) computes it (blocks reserved for root
// count as neither). ok is false when used + free is 0 (unknown).
func DiskUsedPercent(used, free uint64) (pct float64, ok bool) {
	if used+free == 0 {
		return 0, false
	}
	return 100 * float64(used) / float64(used+free), true
}
