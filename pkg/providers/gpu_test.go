package providers_test

import (
	"testing"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

func TestNormalizeGPU(t *testing.T) {
	cases := []struct{ in, want string }{
		// Vast gpu_name
		{"RTX 4090", "RTX 4090"},
		{"RTX_4090", "RTX 4090"},
		{"RTX 5090", "RTX 5090"},
		{"RTX 3090", "RTX 3090"},
		{"RTX 3090 Ti", "RTX 3090 Ti"},
		{"A100 80GB", "A100"},
		{"A100 PCIE", "A100"},
		{"A100_SXM4", "A100"},
		{"H100 NVL", "H100"},
		{"H100 SXM", "H100"},
		{"H200", "H200"},
		{"GH200", "GH200"},
		{"A40", "A40"},
		{"A10", "A10"},
		{"L40S", "L40S"},
		{"L40", "L40"},
		{"RTX A6000", "RTX A6000"},
		{"RTX 6000Ada", "RTX 6000 Ada"},
		// RunPod gpu ids
		{"NVIDIA GeForce RTX 4090", "RTX 4090"},
		{"NVIDIA H100 80GB HBM3", "H100"},
		{"NVIDIA A40", "A40"},
		{"NVIDIA L40S", "L40S"},
		{"NVIDIA H200", "H200"},
		// Lambda instance types / descriptions
		{"gpu_1x_gh200", "GH200"},
		{"gpu_1x_a10", "A10"},
		{"gpu_1x_h100_pcie", "H100"},
		{"gpu_8x_h100_sxm5", "H100"},
		{"gpu_1x_a100_sxm4", "A100"},
		{"gpu_1x_a6000", "RTX A6000"},
		{"GH200 (96 GB)", "GH200"},
		// Unknown models stay raw (trimmed), never guessed.
		{"RTX 2080 Ti", "RTX 2080 Ti"},
		{"  RTX 2080 Ti ", "RTX 2080 Ti"},
		{"RTX 3060", "RTX 3060"},
		{"RTX 4060 Ti", "RTX 4060 Ti"},
		{"Tesla V100", "Tesla V100"},
		{"", ""},
		{"   ", ""},
	}
	for _, c := range cases {
		if got := providers.NormalizeGPU(c.in); got != c.want {
			t.Errorf("NormalizeGPU(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
