// Command fleetmq-broker runs the FleetMQ MQTT broker.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "fleetmq-broker: the broker is being built; see issue 2")
	os.Exit(1)
}
