package bench

import (
	"fmt"
	"strconv"
	"time"
)

// Record is one broker's results, the JSON that `fleetmq-bench run -json`
// and `fleetmq-bench idle -json` write and `fleetmq-bench report` reads.
// Several records of the same broker are merged by the report.
type Record struct {
	Broker  string `json:"broker"`
	Version string `json:"version,omitempty"`
	// Unavailable, when set, says why the broker could not be measured.
	Unavailable string      `json:"unavailable,omitempty"`
	Runs        []Result    `json:"runs,omitempty"`
	Idle        *IdleResult `json:"idle,omitempty"`
	// LoadAverage is /proc/loadavg's 1, 5 and 15 minute figures when the
	// measurement started: on a shared machine, other work skews results.
	LoadAverage string `json:"load_average,omitempty"`
}

// TableHeader is the header line of the text table that the command prints,
// one TableRow per run below it.
func TableHeader() string {
	return fmt.Sprintf("%-8s %3s %-13s %4s %4s %10s %10s %10s %9s %9s %9s %8s %6s %6s %7s",
		"WORKLOAD", "QOS", "MODE", "PUB", "SUB", "PUBLISHED", "DELIVERED", "MSG/S", "P50", "P99", "MAX", "LOST", "DUP", "TOOL%", "BROKER%")
}

// TableRow formats r under TableHeader.
func (r Result) TableRow() string {
	broker := "-"
	if r.BrokerCPUPercent > 0 {
		broker = strconv.FormatFloat(r.BrokerCPUPercent, 'f', 0, 64)
	}
	row := fmt.Sprintf("%-8s %3d %-13s %4d %4d %10d %10d %10.0f %9s %9s %9s %8d %6d %6.0f %7s",
		r.Workload, r.QoS, r.Mode(), r.Publishers, r.Subscribers, r.Published, r.Delivered,
		r.MessagesPerSec, FormatMicros(r.P50Micros), FormatMicros(r.P99Micros), FormatMicros(r.MaxMicros),
		r.Lost, r.Duplicated, r.ToolCPUPercent, broker)
	if r.Error != "" {
		row += "  error: " + r.Error
	}
	return row
}

// FormatMicros prints a latency given in microseconds with three
// significant digits and a unit that suits it.
func FormatMicros(us float64) string {
	if us <= 0 {
		return "-"
	}
	d := time.Duration(us * float64(time.Microsecond))
	switch {
	case d < time.Millisecond:
		return strconv.FormatFloat(us, 'f', 0, 64) + "µs"
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(us/1e3, 'f', 2, 64) + "ms"
	case d < time.Second:
		return strconv.FormatFloat(us/1e3, 'f', 1, 64) + "ms"
	default:
		return strconv.FormatFloat(us/1e6, 'f', 2, 64) + "s"
	}
}

// FormatRate prints messages per second compactly: 1234567 -> "1.23M".
func FormatRate(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}
