package health

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// NvidiaSMIQueryFields is the --query-gpu field list the GPU probe asks for,
// in the column order parseNvidiaSMI expects (field names per
// `nvidia-smi --help-query-gpu`).
const NvidiaSMIQueryFields = "index,name,uuid,utilization.gpu,memory.total,memory.used," +
	"temperature.gpu,power.draw,ecc.errors.uncorrected.volatile.total"

// nvidiaSMIArgs are the arguments of the GPU probe: CSV without header and
// without units (memory in MiB, power in W, temperature in C).
var nvidiaSMIArgs = []string{"--query-gpu=" + NvidiaSMIQueryFields, "--format=csv,noheader,nounits"}

const nvidiaSMIColumns = 9

const mib = 1 << 20

// gpuProbeResult is what one GPU probe found.
type gpuProbeResult struct {
	status string   // Sample.GPUProbe
	gpus   []GPU    // never nil
	errs   []string // row-level parse problems (also reflected in status)
}

// probeGPUs runs nvidia-smi through execFn and classifies the outcome.
func probeGPUs(ctx context.Context, execFn ExecFunc, smi string) gpuProbeResult {
	out, err := execFn(ctx, smi, nvidiaSMIArgs...)
	if err != nil {
		if isNotFound(err) {
			return gpuProbeResult{status: GPUProbeNotFound, gpus: []GPU{}}
		}
		if noDevices(out) {
			return gpuProbeResult{status: GPUProbeNoGPU, gpus: []GPU{}}
		}
		msg := firstLine(out)
		if ctx.Err() != nil {
			msg = "" // output of a killed command says nothing useful
		}
		switch {
		case msg != "":
			msg = msg + " (" + err.Error() + ")"
		default:
			msg = err.Error()
		}
		return gpuProbeResult{status: GPUProbeErrorPrefix + msg, gpus: []GPU{}}
	}
	if noDevices(out) {
		return gpuProbeResult{status: GPUProbeNoGPU, gpus: []GPU{}}
	}
	gpus, errs := parseNvidiaSMI(out)
	switch {
	case len(errs) > 0:
		return gpuProbeResult{status: GPUProbeErrorPrefix + errs[0], gpus: gpus, errs: errs}
	case len(gpus) == 0:
		return gpuProbeResult{status: GPUProbeNoGPU, gpus: gpus}
	default:
		return gpuProbeResult{status: GPUProbeOK, gpus: gpus}
	}
}

// isNotFound reports whether err means "there is no such executable".
func isNotFound(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

// noDevices recognises nvidia-smi's "No devices were found" (exit code 6).
func noDevices(out []byte) bool {
	return bytes.Contains(out, []byte("No devices were found"))
}

// firstLine returns the first non-empty line of b, trimmed.
func firstLine(b []byte) string {
	for line := range strings.SplitSeq(string(b), "\n") {
		if s := strings.TrimSpace(line); s != "" {
			return s
		}
	}
	return ""
}

// parseNvidiaSMI parses the output of nvidia-smi with nvidiaSMIArgs. A row
// with the wrong number of columns or an unparsable index is skipped and
// reported; an unparsable value makes only that field unknown and is
// reported. The returned slice is never nil.
func parseNvidiaSMI(out []byte) ([]GPU, []string) {
	gpus := []GPU{}
	var errs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		cols := strings.Split(line, ",")
		if len(cols) != nvidiaSMIColumns {
			errs = append(errs, fmt.Sprintf("nvidia-smi: unexpected row %q (%d columns, want %d)", truncate(line, 120), len(cols), nvidiaSMIColumns))
			continue
		}
		for i := range cols {
			cols[i] = strings.TrimSpace(cols[i])
		}
		idx, err := strconv.Atoi(cols[0])
		if err != nil || idx < 0 {
			errs = append(errs, fmt.Sprintf("nvidia-smi: bad index %q in row %q", cols[0], truncate(line, 120)))
			continue
		}
		g := GPU{Index: idx, Name: cols[1], UUID: cols[2]}
		if unknownValue(g.Name) {
			g.Name = ""
		}
		if unknownValue(g.UUID) {
			g.UUID = ""
		}
		field := func(name, v string, fn func(string) error) {
			if unknownValue(v) {
				return
			}
			if err := fn(v); err != nil {
				errs = append(errs, fmt.Sprintf("nvidia-smi: gpu %d %s: unparsable %q", idx, name, v))
			}
		}
		field("utilization.gpu", cols[3], func(v string) (err error) { g.UtilizationPercent, err = parseFloat(v); return })
		field("memory.total", cols[4], func(v string) (err error) { g.MemoryTotalBytes, err = parseMiB(v); return })
		field("memory.used", cols[5], func(v string) (err error) { g.MemoryUsedBytes, err = parseMiB(v); return })
		field("temperature.gpu", cols[6], func(v string) (err error) { g.TemperatureC, err = parseFloat(v); return })
		field("power.draw", cols[7], func(v string) (err error) { g.PowerWatts, err = parseFloat(v); return })
		field("ecc.errors.uncorrected.volatile.total", cols[8], func(v string) (err error) {
			n, err := strconv.ParseUint(v, 10, 64)
			if err == nil {
				g.ECCErrorsUncorrected = &n
			}
			return err
		})
		gpus = append(gpus, g)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, "nvidia-smi: reading output: "+err.Error())
	}
	return gpus, errs
}

// unknownValue reports whether nvidia-smi printed "no value" for a field:
// empty, "N/A", or any bracketed text such as "[N/A]", "[Not Supported]",
// "[Unknown Error]", "[GPU requires reset]".
func unknownValue(v string) bool {
	return v == "" || v == "N/A" || strings.HasPrefix(v, "[")
}

func parseFloat(v string) (*float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// parseMiB parses a MiB count (integer, or a decimal on odd drivers) into
// bytes.
func parseMiB(v string) (*uint64, error) {
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		b := n * mib
		return &b, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return nil, fmt.Errorf("not a MiB count: %q", v)
	}
	b := uint64(f * mib)
	return &b, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ExecFunc runs a command and returns its standard output. It must honour
// ctx (kill the command when ctx ends). When the command does not exist the
// error must satisfy errors.Is(err, exec.ErrNotFound) or
// errors.Is(err, fs.ErrNotExist). When it exits non-zero, it returns what
// the command printed on stdout together with the error.
type ExecFunc func(ctx context.Context, name string, args ...string) ([]byte, error)

// execWaitDelay bounds how long a killed command may hold its pipes open.
const execWaitDelay = 500 * time.Millisecond

// maxCommandOutput caps what runCommand keeps of stdout and stderr.
const maxCommandOutput = 1 << 20

// runCommand is the default ExecFunc: os/exec, killed when ctx ends, stderr's
// first line folded into the error.
func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = execWaitDelay
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxCommandOutput, maxCommandOutput
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		if l := firstLine(stderr.buf.Bytes()); l != "" {
			err = fmt.Errorf("%w: %s", err, l)
		}
	}
	return stdout.buf.Bytes(), err
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}
