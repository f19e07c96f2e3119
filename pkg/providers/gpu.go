package providers

import (
	"regexp"
	"strings"
)

// gpuPatterns maps a provider's GPU name to a canonical model, most specific first.
// Canonical names follow NVIDIA's marketing names without vendor prefix.
var gpuPatterns = []struct {
	re    *regexp.Regexp
	model string
}{
	{regexp.MustCompile(`(?i)gh[ _-]?200`), "GH200"},
	{regexp.MustCompile(`(?i)h[ _-]?200`), "H200"},
	{regexp.MustCompile(`(?i)h[ _-]?100`), "H100"},
	{regexp.MustCompile(`(?i)a[ _-]?100`), "A100"},
	{regexp.MustCompile(`(?i)l[ _-]?40[ _-]?s`), "L40S"},
	{regexp.MustCompile(`(?i)(^|[^0-9a-z])l[ _-]?40($|[^0-9a-z])`), "L40"},
	{regexp.MustCompile(`(?i)(^|[^0-9a-z])a[ _-]?40($|[^0-9a-z])`), "A40"},
	{regexp.MustCompile(`(?i)(^|[^0-9a-z])a[ _-]?10($|[^0-9a-z])`), "A10"},
	{regexp.MustCompile(`(?i)rtx[ _-]?a[ _-]?6000`), "RTX A6000"},
	{regexp.MustCompile(`(?i)rtx[ _-]?6000[ _-]?ada`), "RTX 6000 Ada"},
	{regexp.MustCompile(`(?i)(^|[^0-9a-z])a[ _-]?6000($|[^0-9a-z])`), "RTX A6000"}, // Lambda gpu_1x_a6000
	{regexp.MustCompile(`(?i)(rtx|geforce)?[ _-]?5090`), "RTX 5090"},
	{regexp.MustCompile(`(?i)(rtx|geforce)?[ _-]?4090`), "RTX 4090"},
	{regexp.MustCompile(`(?i)(rtx|geforce)?[ _-]?3090[ _-]?ti`), "RTX 3090 Ti"},
	{regexp.MustCompile(`(?i)(rtx|geforce)?[ _-]?3090`), "RTX 3090"},
}

// NormalizeGPU maps a provider's GPU name ("RTX_4090", "NVIDIA GeForce RTX 4090",
// "gpu_1x_h100_sxm5", "H100 80GB HBM3") to a canonical model ("RTX 4090", "H100").
// A name it does not know is returned trimmed, unchanged: never guessed.
// An empty name stays empty (unknown).
func NormalizeGPU(raw string) string {
	s := strings.TrimSpace(raw)
	if s == "" {
		return ""
	}
	for _, p := range gpuPatterns {
		if p.re.MatchString(s) {
			return p.model
		}
	}
	return s
}
