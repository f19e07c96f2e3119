// Package health samples the health of the host an agent runs on: CPU, load,
// memory, uptime, the disks of the data paths, NVIDIA GPUs (through
// nvidia-smi) and the presence of watched processes (training, self-play).
//
// Design rules (docs/ARCHITECTURE.md §4 step 2, §11.16-17):
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

import "github.com/ringmesh/ringmesh/pkg/events"

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

// The wire types of a sample live in pkg/events (a package without
// dependencies beyond the standard library, so that the bus trust boundary
// can decode them); these aliases keep their health.* names.
type (
	// Sample is one health reading of the host; see events.HealthSample.
	Sample = events.HealthSample
	// Disk is the usage of one data path's filesystem; see events.Disk.
	Disk = events.Disk
	// GPU is one NVIDIA GPU as nvidia-smi reports it; see events.GPU.
	GPU = events.GPU
	// Process says whether a watched process runs; see events.Process.
	Process = events.Process
)
