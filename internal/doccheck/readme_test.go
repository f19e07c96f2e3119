package doccheck

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// binaries are the commands the documentation names; "both" in a table
// means coordinator and agent.
var binaries = []string{"coordinator", "agent", "meshctl"}

// accepts is what one binary takes: its flags (without "--") and the
// environment variables it reads.
type accepts struct {
	flags map[string]bool
	env   map[string]bool
	help  string
}

var (
	buildOnce sync.Once
	built     map[string]*accepts
	buildErr  error
)

var (
	stdFlagRe   = regexp.MustCompile(`(?m)^\s+-([A-Za-z0-9][A-Za-z0-9-]*)`)
	cobraFlagRe = regexp.MustCompile(`(?m)^\s+(?:-[A-Za-z], )?--([a-z][a-z0-9-]*)`)
	cobraCmdRe  = regexp.MustCompile(`(?m)^  ([a-z][a-z0-9-]*)\s{2,}`)
	envRe       = regexp.MustCompile(`RINGMESH_[A-Z0-9_]+`)
	credRe      = regexp.MustCompile(`\b(?:VAST|RUNPOD|LAMBDA|VULTR|HCLOUD|NEBIUS)_[A-Z0-9_]*[A-Z0-9]\b`)
	flagInRe    = regexp.MustCompile(`(?:^|[\s\[(=])--([a-z][a-z0-9-]*)`)
	natsVarRe   = regexp.MustCompile(`\$(RINGMESH_[A-Z0-9_]+)`)
)

func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return r
}

// binaryFacts builds the three binaries once and reads what they accept
// from their help output (nothing is started): the flags; for coordinator
// and agent the RINGMESH_<FLAG> / RINGMESH_AGENT_<FLAG> variable of each
// flag (cli.ApplyEnv); and every variable the help names as read directly.
func binaryFacts(t *testing.T) map[string]*accepts {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		// Not a skip: without the binaries the docs would go unchecked.
		t.Fatalf("this check builds the binaries to read their flags and needs go on PATH: %v", err)
	}
	r := root(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "doccheck")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command(goBin, "build", "-o", dir+string(filepath.Separator), "./cmd/coordinator", "./cmd/agent", "./cmd/meshctl")
		cmd.Dir = r
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built = map[string]*accepts{}
		for _, b := range binaries {
			a := &accepts{flags: map[string]bool{}, env: map[string]bool{}}
			run := func(args ...string) string {
				out, _ := exec.Command(filepath.Join(dir, b), args...).CombinedOutput() // -h exits non-zero
				a.help += string(out) + "\n"
				return string(out)
			}
			if b == "meshctl" {
				// Every command's flags, nested commands too (meshctl creds issue).
				var walk func(path []string, depth int)
				walk = func(path []string, depth int) {
					help := run(append(append([]string{}, path...), "--help")...)
					for _, m := range cobraFlagRe.FindAllStringSubmatch(help, -1) {
						a.flags[m[1]] = true
					}
					_, cmds, ok := strings.Cut(help, "Available Commands:")
					if !ok || depth >= 3 {
						return
					}
					cmds, _, _ = strings.Cut(cmds, "\n\n")
					for _, m := range cobraCmdRe.FindAllStringSubmatch(cmds, -1) {
						if m[1] != "help" && m[1] != "completion" {
							walk(append(append([]string{}, path...), m[1]), depth+1)
						}
					}
				}
				walk(nil, 0)
			} else {
				for _, m := range stdFlagRe.FindAllStringSubmatch(run("-h"), -1) {
					a.flags[m[1]] = true
				}
				prefix := map[string]string{"coordinator": "RINGMESH", "agent": "RINGMESH_AGENT"}[b]
				for f := range a.flags {
					a.env[prefix+"_"+strings.ToUpper(strings.ReplaceAll(f, "-", "_"))] = true
				}
			}
			for _, e := range envRe.FindAllString(a.help, -1) {
				if !strings.HasSuffix(e, "_") {
					a.env[e] = true
				}
			}
			for _, e := range credRe.FindAllString(a.help, -1) {
				a.env[e] = true
			}
			if len(a.flags) < 3 {
				buildErr = fmt.Errorf("%s: help lists %d flags:\n%s", b, len(a.flags), a.help)
				return
			}
			built[b] = a
		}
		_ = os.RemoveAll(dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// mention is one flag the documentation gives, with the binary it names
// ("" = none named: any binary must accept it; "both" = coordinator and agent).
type mention struct {
	where, flag, bin string
}

// docFiles are the operator documents, relative to the module root.
var docFiles = []string{"README.md", filepath.Join("deploy", "README.md")}

// flagMentions finds the ringmesh flags in a Markdown document:
//   - in code blocks, each simple command (split at &&, ||, ;, |, &; lines
//     joined at a trailing \) run as `go run ./cmd/X`, `X`, `ringmesh-X`
//     or `/path/ringmesh-X` names X; other programs' flags (systemctl
//     --now) are not ours;
//   - in prose and tables, each `code span` holding --flags: a span that
//     is a command names its binary as above (or a meshctl subcommand in
//     the meshctl section); other spans take the table row's binary
//     column (coordinator, agent, both) or the section (### coordinator,
//     ### agent, ### meshctl), else none.
func flagMentions(file, text string, meshctlCmds map[string]bool) []mention {
	var out []mention
	lines := strings.Split(text, "\n")
	section := ""
	inCode := false
	var para []string
	paraStart := 0
	flushPara := func() {
		if len(para) > 0 {
			out = append(out, spanMentions(file, paraStart, strings.Join(para, "\n"), section, meshctlCmds)...)
		}
		para = nil
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			flushPara()
			inCode = !inCode
			continue
		}
		if inCode {
			start := i
			for strings.HasSuffix(strings.TrimRight(l, " "), `\`) && i+1 < len(lines) {
				i++
				l = strings.TrimSuffix(strings.TrimRight(l, " "), `\`) + " " + lines[i]
			}
			out = append(out, commandMentions(fmt.Sprintf("%s:%d", file, start+1), l, "", meshctlCmds)...)
			continue
		}
		if strings.HasPrefix(l, "#") {
			flushPara()
			h := strings.ToLower(strings.Trim(strings.TrimLeft(l, "#"), " `"))
			section = ""
			for _, b := range binaries {
				if h == b {
					section = b
				}
			}
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(l), "|") {
			flushPara()
			cells := strings.Split(strings.ReplaceAll(l, `\|`, "\x00"), "|")
			rowBin := section
			if len(cells) > 1 {
				switch c := strings.TrimSpace(cells[1]); c {
				case "coordinator", "agent", "meshctl", "both":
					rowBin = c
				}
			}
			out = append(out, spanMentions(file, i+1, strings.ReplaceAll(l, "\x00", `\|`), rowBin, meshctlCmds)...)
			continue
		}
		if strings.TrimSpace(l) == "" {
			flushPara()
			continue
		}
		if len(para) == 0 {
			paraStart = i + 1
		}
		para = append(para, l)
	}
	flushPara()
	return out
}

var spanRe = regexp.MustCompile("`([^`]+)`")

func spanMentions(file string, line int, text, ctx string, meshctlCmds map[string]bool) []mention {
	var out []mention
	for _, m := range spanRe.FindAllStringSubmatchIndex(text, -1) {
		span := strings.ReplaceAll(text[m[2]:m[3]], "\n", " ")
		if !strings.Contains(span, "--") {
			continue
		}
		where := fmt.Sprintf("%s:%d", file, line+strings.Count(text[:m[0]], "\n"))
		first := strings.Fields(span)[0]
		if strings.HasPrefix(first, "-") || strings.HasPrefix(first, "[") {
			for _, f := range flagInRe.FindAllStringSubmatch(span, -1) {
				out = append(out, mention{where, f[1], ctx})
			}
			continue
		}
		out = append(out, commandMentions(where, span, ctx, meshctlCmds)...)
	}
	return out
}

var splitCmdRe = regexp.MustCompile(`\s(?:&&|\|\||;|\||&)(?:\s|$)|\s&$`)

// commandMentions reads the flags of each simple command in a shell line
// that runs a ringmesh binary.
func commandMentions(where, line, ctx string, meshctlCmds map[string]bool) []mention {
	if i := strings.Index(line, " #"); i >= 0 {
		line = line[:i]
	}
	var out []mention
	for _, c := range splitCmdRe.Split(line, -1) {
		w := strings.Fields(c)
		for len(w) > 0 && (strings.Contains(w[0], "=") && !strings.HasPrefix(w[0], "-") || w[0] == "nohup" || w[0] == "sudo" || w[0] == "exec" || w[0] == "env") {
			w = w[1:]
		}
		if len(w) == 0 {
			continue
		}
		bin := ""
		base := filepath.Base(w[0])
		switch {
		case w[0] == "go" && len(w) > 2 && w[1] == "run" && strings.HasPrefix(w[2], "./cmd/"):
			bin = strings.TrimPrefix(w[2], "./cmd/")
		case base == "coordinator" || base == "agent" || base == "meshctl":
			bin = base
		case strings.HasPrefix(base, "ringmesh-"):
			bin = strings.TrimPrefix(base, "ringmesh-")
		case ctx == "meshctl" && meshctlCmds[strings.Split(w[0], `\|`)[0]]:
			bin = "meshctl"
		default:
			continue // another program: its flags are not ours
		}
		for _, f := range flagInRe.FindAllStringSubmatch(strings.Join(w, " "), -1) {
			out = append(out, mention{where, f[1], bin})
		}
	}
	return out
}

func TestDocumentedFlagsExist(t *testing.T) {
	bins := binaryFacts(t)
	cmds := map[string]bool{}
	_, list, _ := strings.Cut(bins["meshctl"].help, "Available Commands:")
	list, _, _ = strings.Cut(list, "\n\n")
	for _, m := range cobraCmdRe.FindAllStringSubmatch(list, -1) {
		cmds[m[1]] = true
	}
	n := 0
	for _, f := range docFiles {
		b, err := os.ReadFile(filepath.Join(root(t), f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range flagMentions(f, string(b), cmds) {
			n++
			var want []string
			switch m.bin {
			case "":
			case "both":
				want = []string{"coordinator", "agent"}
			default:
				want = []string{m.bin}
			}
			if len(want) == 0 {
				if !bins["coordinator"].flags[m.flag] && !bins["agent"].flags[m.flag] && !bins["meshctl"].flags[m.flag] {
					t.Errorf("%s: --%s is documented, but no binary has it", m.where, m.flag)
				}
				continue
			}
			for _, w := range want {
				a := bins[w]
				if a == nil {
					t.Errorf("%s: --%s is documented for %q, which is not a ringmesh binary", m.where, m.flag, w)
					continue
				}
				if !a.flags[m.flag] {
					t.Errorf("%s: --%s is documented for %s, which has no such flag", m.where, m.flag, w)
				}
			}
		}
	}
	if n < 30 {
		t.Fatalf("found only %d flag mentions: the parser lost the documentation", n)
	}
}

// envDocs are the documents whose RINGMESH_* (and provider credential)
// variables must be read by a binary; a file named <binary>.env is that
// binary's and nats.env feeds nats-server's configuration.
func envDocs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range docFiles {
		out[f] = ""
	}
	m, _ := filepath.Glob(filepath.Join(root(t), "deploy", "examples", "*.env"))
	for _, p := range m {
		rel, _ := filepath.Rel(root(t), p)
		out[rel] = strings.TrimSuffix(filepath.Base(p), ".env")
	}
	return out
}

func TestDocumentedEnvironmentIsRead(t *testing.T) {
	bins := binaryFacts(t)
	// Variables the NATS configurations in deploy/ reference ($NAME): read
	// by nats-server, which deploy_test checks against them.
	natsVars := map[string]bool{}
	confs, _ := filepath.Glob(filepath.Join(root(t), "deploy", "nats", "*.conf"))
	more, _ := filepath.Glob(filepath.Join(root(t), "deploy", "examples", "*.conf"))
	for _, c := range append(confs, more...) {
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range natsVarRe.FindAllStringSubmatch(string(b), -1) {
			natsVars[m[1]] = true
		}
	}
	n := 0
	for f, owner := range envDocs(t) {
		file, err := os.Open(filepath.Join(root(t), f))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(file)
		for line := 1; sc.Scan(); line++ {
			names := append(envRe.FindAllString(sc.Text(), -1), credRe.FindAllString(sc.Text(), -1)...)
			for _, e := range names {
				if strings.HasSuffix(e, "_") {
					continue // a pattern such as RINGMESH_<FLAG>
				}
				n++
				ok := false
				switch {
				case owner == "nats":
					ok = natsVars[e]
				case owner != "":
					ok = bins[owner] != nil && bins[owner].env[e]
				default:
					ok = natsVars[e] || bins["coordinator"].env[e] || bins["agent"].env[e] || bins["meshctl"].env[e]
				}
				if !ok {
					who := owner + " does not read it"
					if owner == "" {
						who = "no ringmesh binary (nor nats-server's configuration) reads it"
					}
					t.Errorf("%s:%d: %s is documented, but %s", f, line, e, who)
				}
			}
		}
		file.Close()
	}
	if n < 10 {
		t.Fatalf("found only %d variables: the parser lost the documentation", n)
	}
}

// The README's --preempt-notice defaults are the table's (mesh.NoticeSummary).
func TestREADMENoticeFiguresAreTheTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "`--preempt-notice`") {
			if !strings.Contains(l, mesh.NoticeSummary()) {
				t.Errorf("README --preempt-notice row %q does not give mesh.NoticeSummary() = %q", l, mesh.NoticeSummary())
			}
			return
		}
	}
	t.Log("README does not document --preempt-notice")
}

// The parser itself: what it must find and what it must leave alone.
func TestFlagMentionsParser(t *testing.T) {
	doc := "### agent\n\n| flag | x |\n|---|---|\n| `--node` | id |\n\n" +
		"| binary | flag |\n|---|---|\n| both | `--gossip-listen` |\n| coordinator | `--replicas` |\n\n" +
		"```\ngo run ./cmd/meshctl stop x --dry-run --force   # comment --not-a-flag\n" +
		"systemctl daemon-reload && systemctl enable --now ringmesh-nats && systemctl restart ringmesh-coordinator && ringmesh-coordinator --name a\n" +
		"nohup /usr/local/bin/ringmesh-agent --state-dir d \\\n  --heartbeat 5s >>log 2>&1 &\n```\n\n" +
		"Run `systemctl enable --now\nringmesh-agent` and pass `--node %H`; see `meshctl events --invalid`.\n\n" +
		"### meshctl\n\n| `cost [--by node\\|provider]` | `--json` |\n"
	got := map[string]string{}
	for _, m := range flagMentions("d.md", doc, map[string]bool{"cost": true}) {
		got[m.flag] += m.bin + "@" + m.where + " "
	}
	want := map[string]string{
		"node": "agent@d.md:5 agent@d.md:20 ", "gossip-listen": "both@d.md:9 ", "replicas": "coordinator@d.md:10 ",
		"dry-run": "meshctl@d.md:13 ", "force": "meshctl@d.md:13 ", "name": "coordinator@d.md:14 ",
		"state-dir": "agent@d.md:15 ", "heartbeat": "agent@d.md:15 ", "invalid": "meshctl@d.md:20 ",
		"by": "meshctl@d.md:24 ", "json": "meshctl@d.md:24 ",
	}
	keys := func(m map[string]string) []string {
		var k []string
		for x, v := range m {
			k = append(k, x+"="+v)
		}
		sort.Strings(k)
		return k
	}
	if strings.Join(keys(got), "\n") != strings.Join(keys(want), "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(keys(got), "\n"), strings.Join(keys(want), "\n"))
	}
}

var yamlBlockRe = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// Every inventory example in the README (a yaml block with hosts:) loads
// without errors or warnings.
func TestREADMEInventoryExamplesLoad(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range yamlBlockRe.FindAllStringSubmatch(string(b), -1) {
		if !strings.Contains(m[1], "hosts:") {
			continue
		}
		n++
		inv, err := config.Parse("README.md example", []byte(m[1]))
		if err != nil {
			t.Errorf("README inventory example does not load: %v\n%s", err, m[1])
			continue
		}
		if len(inv.Warnings) > 0 {
			t.Errorf("README inventory example warns: %v", inv.Warnings)
		}
	}
	t.Logf("%d inventory examples", n)
}
