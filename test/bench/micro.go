package bench

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Microbenchmark is one result line of `go test -bench -benchmem` output:
// the hot-path benchmarks of broker/packet and broker/topic that the report
// shows next to the load figures.
type Microbenchmark struct {
	Package    string
	Name       string // without the -GOMAXPROCS suffix
	Iterations int64
	Metrics    []Metric // in output order: ns/op, custom units, B/op, allocs/op
}

// Metric is one value/unit pair of a benchmark line.
type Metric struct {
	Value float64
	Unit  string
}

// procsSuffix is the -N that `go test` appends to a benchmark name when
// GOMAXPROCS is above 1.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// ParseGoBench reads `go test -bench` output and returns its result lines,
// each with the package of the `pkg:` line above it. Other lines (goos,
// PASS, ok) are skipped.
func ParseGoBench(r io.Reader) ([]Microbenchmark, error) {
	var out []Microbenchmark
	pkg := ""
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if p, ok := strings.CutPrefix(text, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(text, "Benchmark") {
			continue
		}
		f := strings.Fields(text)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // a benchmark's own log line, not a result
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		mb := Microbenchmark{Package: pkg, Name: procsSuffix.ReplaceAllString(f[0], ""), Iterations: n}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: value %q of %s: %w", line, f[i], f[0], err)
			}
			mb.Metrics = append(mb.Metrics, Metric{Value: v, Unit: f[i+1]})
		}
		out = append(out, mb)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading benchmark output: %w", err)
	}
	return out, nil
}

// metric returns the value with unit, and whether the line has one.
func (m Microbenchmark) metric(unit string) (float64, bool) {
	for _, x := range m.Metrics {
		if x.Unit == unit {
			return x.Value, true
		}
	}
	return 0, false
}

func writeMicro(b *strings.Builder, in ReportInput) {
	if len(in.Micro) == 0 {
		return
	}
	b.WriteString("## Microbenchmarks\n\n")
	b.WriteString("Go benchmarks of the hot path, on the same machine in the same `make bench` run")
	if in.MicroCommand != "" {
		fmt.Fprintf(b, " (`%s`)", in.MicroCommand)
	}
	b.WriteString(".\nThey run while nothing else of the benchmark does, but the machine's other load applies.\n\n")
	b.WriteString("| package | benchmark | ns/op | B/op | allocs/op | other |\n|---|---|--:|--:|--:|---|\n")
	for _, m := range in.Micro {
		cell := func(unit string) string {
			if v, ok := m.metric(unit); ok {
				return strconv.FormatFloat(v, 'f', -1, 64)
			}
			return "–"
		}
		var other []string
		for _, x := range m.Metrics {
			switch x.Unit {
			case "ns/op", "B/op", "allocs/op":
			default:
				other = append(other, strconv.FormatFloat(x.Value, 'f', -1, 64)+" "+x.Unit)
			}
		}
		pkg := m.Package
		if i := strings.Index(pkg, "/broker/"); i >= 0 {
			pkg = pkg[i+1:]
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", pkg, strings.TrimPrefix(m.Name, "Benchmark"),
			cell("ns/op"), cell("B/op"), cell("allocs/op"), strings.Join(other, ", "))
	}
	b.WriteString("\n")
}

// HandWrittenMarker starts the part of docs/benchmarks.md that people
// write: the analysis of what limits the figures. `fleetmq-bench report`
// keeps everything from this line on when it regenerates the page.
const HandWrittenMarker = "<!-- Written by hand from here on: `make bench` keeps this part when it regenerates the page. -->"

// HandWritten returns the hand-written part of an earlier report, from
// HandWrittenMarker to the end, or "" when it has none.
func HandWritten(earlier string) string {
	i := strings.Index(earlier, HandWrittenMarker)
	if i < 0 {
		return ""
	}
	return earlier[i:]
}
