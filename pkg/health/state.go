package health

import (
	"fmt"
	"strings"
)

// Node health states returned by State.
const (
	StatusHealthy  = "healthy"
	StatusDegraded = "degraded"
)

// UnknownPrefix starts every State reason that names something which could
// not be measured. Such a reason never makes a node degraded.
const UnknownPrefix = "unknown: "

// Default thresholds (see Thresholds).
const (
	DefaultDiskUsedPercent     = 90.0 // docs/ARCHITECTURE.md §11.19: disks hit 91–93 %
	DefaultMemAvailablePercent = 5.0
	DefaultGPUTemperatureC     = 90.0 // below the ~90+ C slowdown point of data-centre NVIDIA GPUs
)

// Thresholds decide when a Sample makes a node degraded. A zero field takes
// its default, so Thresholds{} equals DefaultThresholds(). To switch a check
// off, set a value it can never reach (e.g. DiskUsedPercent 101).
type Thresholds struct {
	// DiskUsedPercent: a data path's filesystem with UsedPercent ≥ this is
	// degraded. Percent, default 90.
	DiskUsedPercent float64
	// MemAvailablePercent: MemAvailableBytes / MemTotalBytes × 100 below
	// this is degraded. Percent, default 5.
	MemAvailablePercent float64
	// GPUTemperatureC: a GPU at or above this temperature is degraded.
	// Degrees Celsius, default 90.
	GPUTemperatureC float64
	// MaxECCUncorrected: a GPU with more uncorrected volatile ECC errors than
	// this is degraded. Count, default 0 (any uncorrected error).
	MaxECCUncorrected uint64
	// MaxXIDErrors: a GPU with more Xid errors than this is degraded (only
	// where Xid counts are known). Count, default 0.
	MaxXIDErrors uint64
}

// DefaultThresholds returns the defaults documented on Thresholds.
func DefaultThresholds() Thresholds {
	return Thresholds{
		DiskUsedPercent:     DefaultDiskUsedPercent,
		MemAvailablePercent: DefaultMemAvailablePercent,
		GPUTemperatureC:     DefaultGPUTemperatureC,
	}
}

func (t Thresholds) withDefaults() Thresholds {
	d := DefaultThresholds()
	if t.DiskUsedPercent == 0 {
		t.DiskUsedPercent = d.DiskUsedPercent
	}
	if t.MemAvailablePercent == 0 {
		t.MemAvailablePercent = d.MemAvailablePercent
	}
	if t.GPUTemperatureC == 0 {
		t.GPUTemperatureC = d.GPUTemperatureC
	}
	return t
}

// State derives the node's health from a Sample: StatusDegraded when any
// measured value crosses a threshold, else StatusHealthy. reasons explains
// each degraded finding ("disk /data 93% used", "memory available 3.1% <
// 5%", "gpu 2 temperature 92 C >= 90 C", "gpu 0 uncorrected ECC errors 4")
// followed by one UnknownPrefix entry per thing that could not be measured
// ("unknown: memory", "unknown: disk /data", "unknown: gpus (error: ...)",
// "unknown: process train"). Unknown values never make a node degraded,
// and are never read as 0. A GPU's missing ECC count is not listed: it is
// the normal state of cards without ECC.
func State(s Sample, th Thresholds) (status string, reasons []string) {
	th = th.withDefaults()
	var bad, unknown []string

	if s.CPUPercent == nil {
		unknown = append(unknown, "cpu")
	}
	if s.Load1 == nil {
		unknown = append(unknown, "load")
	}

	switch {
	case s.MemTotalBytes == nil || s.MemAvailableBytes == nil || *s.MemTotalBytes == 0:
		unknown = append(unknown, "memory")
	default:
		pct := float64(*s.MemAvailableBytes) / float64(*s.MemTotalBytes) * 100
		if pct < th.MemAvailablePercent {
			bad = append(bad, fmt.Sprintf("memory available %.1f%% < %g%%", pct, th.MemAvailablePercent))
		}
	}

	for _, d := range s.Disks {
		if d.UsedPercent == nil {
			unknown = append(unknown, "disk "+d.Path)
			continue
		}
		if *d.UsedPercent >= th.DiskUsedPercent {
			bad = append(bad, fmt.Sprintf("disk %s %.0f%% used", d.Path, *d.UsedPercent))
		}
	}

	switch {
	case strings.HasPrefix(s.GPUProbe, GPUProbeErrorPrefix) && len(s.GPUs) == 0:
		unknown = append(unknown, "gpus ("+s.GPUProbe+")")
	case s.GPUProbe == "":
		unknown = append(unknown, "gpus (not probed)")
	}
	for _, g := range s.GPUs {
		if g.TemperatureC == nil {
			unknown = append(unknown, fmt.Sprintf("gpu %d temperature", g.Index))
		} else if *g.TemperatureC >= th.GPUTemperatureC {
			bad = append(bad, fmt.Sprintf("gpu %d temperature %g C >= %g C", g.Index, *g.TemperatureC, th.GPUTemperatureC))
		}
		if g.ECCErrorsUncorrected != nil && *g.ECCErrorsUncorrected > th.MaxECCUncorrected {
			bad = append(bad, fmt.Sprintf("gpu %d uncorrected ECC errors %d", g.Index, *g.ECCErrorsUncorrected))
		}
		if g.XIDErrors != nil && *g.XIDErrors > th.MaxXIDErrors {
			bad = append(bad, fmt.Sprintf("gpu %d Xid errors %d", g.Index, *g.XIDErrors))
		}
	}

	for _, p := range s.Processes {
		if p.Present == nil {
			unknown = append(unknown, "process "+p.Name)
		}
	}

	status = StatusHealthy
	if len(bad) > 0 {
		status = StatusDegraded
	}
	reasons = bad
	for _, u := range unknown {
		reasons = append(reasons, UnknownPrefix+u)
	}
	return status, reasons
}
