// Package health samples the health of the host an agent runs on: CPU, load,
// memory, uptime, the disks of the data paths, NVIDIA GPUs (through
// nvidia-smi) and the presence of watched processes (training, self-play).
//
// Design rules (DESIGN.md §4 step 2; original-system.md §7 items 23-24):
//
//   - A probe that cannot measure reports unknown, never 0: every measured
//     number is a pointer, nil when unknown, encoded as JSON null. An
//     unmeasured busy node must not look idle.
//   - Sampling never blocks the caller longer than the per-probe timeout. Each
//     probe runs in its own goroutine under its own deadline; a probe that
//     misses it is abandoned (its error goes into Sample.Errors) and, while it
//     is still hung (a dead NFS mount, a wedged nvidia-smi), later samples do
//     not start another copy of it but report it as still hung.
//   - The agent loop never waits for a probe at all: Sampler.Run samples in
//     the background and Sampler.Latest hands out the last finished Sample.
//
// Host paths: like prometheus/node_exporter's --path.procfs/--path.sysfs,
// every /proc and /sys read goes through an injectable root
// (Options.ProcRoot, Options.SysRoot). The roots are handed to gopsutil v4
// through the context: context.WithValue(ctx, common.EnvKey,
// common.EnvMap{common.HostProcEnvKey: root, common.HostSysEnvKey: root}),
// which gopsutil's HostProcWithContext/HostSysWithContext consult before the
// HOST_PROC/HOST_SYS environment variables and the /proc, /sys defaults. When
// a root is left empty, gopsutil's own fallback applies (HOST_PROC env, then
// /proc). Disk paths are statfs'd as given (they are paths as the agent sees
// them), not joined to a root.
package health

import "time"

// GPU probe outcomes reported in Sample.GPUProbe. Any other value starts with
// GPUProbeErrorPrefix followed by the reason.
const (
	// GPUProbeOK: nvidia-smi answered and every row parsed.
	GPUProbeOK = "ok"
	// GPUProbeNoGPU: nvidia-smi ran but reported no device ("No devices were
	// found", or an empty table). Not an error.
	GPUProbeNoGPU = "no-gpu"
	// GPUProbeNotFound: no nvidia-smi executable (not on PATH, or the
	// configured path does not exist). Not an error: CPU nodes have none.
	GPUProbeNotFound = "nvidia-smi not found"
	// GPUProbeErrorPrefix starts the GPU probe status when nvidia-smi is
	// present but failed, timed out or printed rows that could not be parsed,
	// e.g. "error: NVIDIA-SMI has failed because it couldn't communicate with
	// the NVIDIA driver. ... (exit status 9)".
	GPUProbeErrorPrefix = "error: "
)

// Sample is one health reading of the host. It is embedded in the agent's
// heartbeat message on the bus, so it is flat and its JSON field names are
// stable (snake_case). Pointer fields are nil (JSON null) when the value
// could not be measured; they are never filled with 0 for "unknown". Slices
// are never nil in a Sample returned by Sampler (they encode as [] not
// null). Treat a Sample as read-only: Sampler.Latest hands the same slices to
// every caller.
type Sample struct {
	// Time is when sampling started (UTC, RFC 3339 in JSON).
	Time time.Time `json:"time"`
	// AgentVersion is the version string of the agent that took the sample
	// (Options.AgentVersion).
	AgentVersion string `json:"agent_version"`

	// CPUPercent is the share of CPU time spent busy (not idle, not iowait),
	// 0..100, over all CPUs, averaged over the window since the previous CPU
	// reading (at least Options.CPUWindow). Source: /proc/stat via gopsutil
	// cpu.TimesWithContext. Inside a container this is host-wide.
	CPUPercent *float64 `json:"cpu_percent"`
	// CPUCount is the number of logical CPUs (gopsutil cpu.CountsWithContext,
	// /proc/cpuinfo). Inside a container this is the host's count.
	CPUCount *int `json:"cpu_count"`
	// Load1, Load5 and Load15 are the 1/5/15-minute load averages (runnable +
	// uninterruptible tasks; /proc/loadavg via gopsutil load.AvgWithContext).
	Load1  *float64 `json:"load1"`
	Load5  *float64 `json:"load5"`
	Load15 *float64 `json:"load15"`

	// MemTotalBytes is MemTotal of /proc/meminfo, in bytes.
	MemTotalBytes *uint64 `json:"mem_total_bytes"`
	// MemUsedBytes is gopsutil's VirtualMemoryStat.Used, in bytes.
	MemUsedBytes *uint64 `json:"mem_used_bytes"`
	// MemAvailableBytes is MemAvailable of /proc/meminfo (estimated by
	// gopsutil on kernels without it), in bytes.
	MemAvailableBytes *uint64 `json:"mem_available_bytes"`

	// UptimeSeconds is the host's uptime in seconds (first field of
	// <proc>/uptime).
	UptimeSeconds *uint64 `json:"uptime_seconds"`

	// Disks holds one entry per configured data path (Options.DiskPaths), in
	// that order.
	Disks []Disk `json:"disks"`

	// GPUProbe says how the GPU probe went: GPUProbeOK, GPUProbeNoGPU,
	// GPUProbeNotFound or GPUProbeErrorPrefix + reason.
	GPUProbe string `json:"gpu_probe"`
	// GPUs holds one entry per GPU that nvidia-smi listed, in its order.
	// Empty (never nil) when there are none or the probe failed.
	GPUs []GPU `json:"gpus"`

	// Processes holds one entry per watched process name
	// (Options.ProcessPatterns), sorted by name.
	Processes []Process `json:"processes"`

	// Errors lists the probe failures of this sample as "probe: reason"
	// (e.g. "memory: open /proc/meminfo: no such file or directory",
	// "disk /data: timed out after 5s"). Empty when every probe succeeded.
	Errors []string `json:"errors"`
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

// Disk is the usage of the filesystem holding one data path (statfs(2) via
// gopsutil disk.UsageWithContext; the same numbers df(1) prints).
type Disk struct {
	// Path is the data path as configured.
	Path string `json:"path"`
	// TotalBytes is the filesystem size in bytes (f_blocks × f_bsize).
	TotalBytes *uint64 `json:"total_bytes"`
	// UsedBytes is the space in use in bytes ((f_blocks − f_bfree) × f_bsize).
	UsedBytes *uint64 `json:"used_bytes"`
	// FreeBytes is the space available to unprivileged users in bytes
	// (f_bavail × f_bsize).
	FreeBytes *uint64 `json:"free_bytes"`
	// UsedPercent is used / (used + free) × 100, as df(1) computes it; nil
	// when the filesystem reports no blocks at all.
	UsedPercent *float64 `json:"used_percent"`
	// FSType is the filesystem type name from statfs f_type ("ext2/ext3",
	// "xfs", "overlayfs", "nfs", ...; gopsutil's names). Empty when unknown.
	FSType string `json:"fs_type"`
	// Error is why this path could not be measured; empty on success.
	Error string `json:"error"`
}

// GPU is one NVIDIA GPU as nvidia-smi --query-gpu reports it. Fields that
// nvidia-smi prints as "[N/A]", "[Not Supported]", any other bracketed
// text, or empty are nil (unknown): e.g. ECC on consumer cards.
type GPU struct {
	// Index is nvidia-smi's "index" (0-based enumeration order).
	Index int `json:"index"`
	// Name is nvidia-smi's "name", e.g. "NVIDIA H100 80GB HBM3".
	Name string `json:"name"`
	// UUID is nvidia-smi's "uuid", e.g. "GPU-5c1f2e3a-...".
	UUID string `json:"uuid"`
	// UtilizationPercent is "utilization.gpu": percent of the last sample
	// period during which a kernel was running, 0..100.
	UtilizationPercent *float64 `json:"utilization_percent"`
	// MemoryTotalBytes is "memory.total" (MiB in nvidia-smi) in bytes.
	MemoryTotalBytes *uint64 `json:"memory_total_bytes"`
	// MemoryUsedBytes is "memory.used" (MiB in nvidia-smi) in bytes.
	MemoryUsedBytes *uint64 `json:"memory_used_bytes"`
	// TemperatureC is "temperature.gpu", core temperature in degrees Celsius.
	TemperatureC *float64 `json:"temperature_c"`
	// PowerWatts is "power.draw", board power draw in watts.
	PowerWatts *float64 `json:"power_watts"`
	// ECCErrorsUncorrected is "ecc.errors.uncorrected.volatile.total":
	// uncorrected ECC errors since the last driver load; nil where ECC is not
	// supported or disabled.
	ECCErrorsUncorrected *uint64 `json:"ecc_errors_uncorrected"`
	// XIDErrors would count NVIDIA Xid events; nvidia-smi --query-gpu does
	// not expose them (they appear only in the kernel log as "NVRM: Xid"),
	// so this is always nil for now.
	XIDErrors *uint64 `json:"xid_errors"`
}

// Process says whether a watched process (e.g. "train", "selfplay") runs.
type Process struct {
	// Name is the key of Options.ProcessPatterns.
	Name string `json:"name"`
	// Present is true when at least one process command line matched the
	// pattern, false when none did, nil when the process list could not be
	// read (unknown: never reported as absent).
	Present *bool `json:"present"`
	// Count is the number of matching processes; nil when unknown.
	Count *int `json:"count"`
}
