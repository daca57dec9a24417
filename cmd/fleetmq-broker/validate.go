package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
)

// runValidate implements `fleetmq-broker validate`: it parses the config
// file and every file it names (or the files given by flag) with the
// broker's own parsers and reports each problem with its file and line,
// without starting anything. The exit status says whether all is well.
func runValidate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fleetmq-broker validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file; the password, ACL and TLS files it names are checked too")
	var files fileFlags
	fs.StringVar(&files.aclFile, "acl-file", "", "ACL file to check (overrides the config's aclFile)")
	fs.StringVar(&files.passwordFile, "password-file", "", "password file to check (overrides the config's passwordFile)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fleetmq-broker validate [--config FILE] [--acl-file FILE] [--password-file FILE]\n\n"+
			"Checks the files without starting the broker; exits non-zero with file:line errors.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see validate --help", fs.Arg(0))
	}
	if *configPath == "" && files.aclFile == "" && files.passwordFile == "" {
		return errors.New("nothing to validate: give --config, --acl-file or --password-file")
	}
	cfg := &config.Config{}
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath); err != nil {
			return err
		}
	}
	files.apply(cfg)
	if err := broker.CheckFiles(cfg); err != nil {
		return err
	}
	for _, p := range []string{*configPath, cfg.PasswordFile, cfg.ACLFile} {
		if p != "" {
			fmt.Fprintf(stdout, "%s: ok\n", p)
		}
	}
	for _, l := range cfg.Listeners {
		if l.TLS != nil {
			fmt.Fprintf(stdout, "listener %s: TLS files ok\n", l.Name)
		}
	}
	return nil
}
