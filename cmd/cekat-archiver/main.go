// Command cekat-archiver archives WhatsApp conversation history from the
// Cekat messaging API into ClickHouse.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/alecthomas/kong"
)

// cli is the command line. Each command's Run method wires the packages
// together; none holds logic of its own beyond presenting results.
type cli struct {
	Config    string `short:"c" help:"Configuration file (YAML)." env:"CEKAT_ARCHIVER_CONFIG" type:"path" placeholder:"FILE"`
	LogFormat string `help:"Log format, overriding log.format: json or console." enum:",json,console" default:""`

	VersionFlag kong.VersionFlag `name:"version" help:"Print the version and exit."`

	Version       versionCmd `cmd:"" help:"Print the version."`
	ConfigCommand configCmd  `cmd:"" name:"config" help:"Inspect the configuration."`
	Migrate       migrateCmd `cmd:"" help:"Create the database and schema in ClickHouse (safe to repeat) and print it."`
	Run           runCmd     `cmd:"" help:"Run as a daemon: sync on schedule.sync, serve /metrics, /healthz and /readyz."`
	Sync          syncCmd    `cmd:"" help:"Archive the tracked conversations once. Exits 0 when the run succeeded or a signal stopped it, 1 when it failed (a refused API key, a failing ClickHouse, conversations that failed), 2 on a usage error."`
	Status        statusCmd  `cmd:"" help:"Show the sync state of every tracked conversation, those never synced too. With --lagging, exits 3 when some lag."`
	Send          sendCmd    `cmd:"" help:"Send a WhatsApp message through the API."`
	Purge         purgeCmd   `cmd:"" help:"Delete conversations past retention upstream, once completely archived (retention.*); every decision goes to purge_audit."`
	Erase         eraseCmd   `cmd:"" help:"Erase conversations upstream and from every archive table (--yes); the audit keeps no content."`
}

type configCmd struct {
	Check configCheckCmd `cmd:"" help:"Validate the configuration and print it with secrets masked."`
}

// env is what every command gets: where to write and the global flags.
type env struct {
	stdout, stderr io.Writer
	cli            *cli
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// GOMEMLIMIT says otherwise: the archiver is meant to stay under 100 MiB
// whatever it archives, and the limit makes the collector work harder as
// the heap nears it instead of letting it double.
const defaultMemoryLimit = 80 << 20

func main() {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var c cli
	exitCode := -1
	parser, err := kong.New(&c,
		kong.Name("cekat-archiver"),
		kong.Description("Archives WhatsApp conversation history from the Cekat API into ClickHouse."),
		kong.UsageOnError(),
		kong.Writers(stdout, stderr),
		kong.Vars{"version": versionLine()},
		kong.Exit(func(code int) { exitCode = code; panic(exitSignal{}) }),
	)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	code := func() (code int) {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(exitSignal); !ok {
					panic(r)
				}
				code = exitCode
			}
		}()
		kctx, err := parser.Parse(args)
		if err != nil {
			fmt.Fprintf(stderr, "cekat-archiver: %s\n", displayLines(err.Error(), maxLineRunes))
			return 2
		}
		// The first signal stops work gracefully; after it the default
		// action returns, so a second signal ends the process at once. The
		// handler stays until the process exits: a first signal that comes
		// after the command's work, while the process is ending, must not
		// end it by the signal instead of its exit code.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		go func() { <-ctx.Done(); stop() }()
		e := &env{stdout: stdout, stderr: stderr, cli: &c}
		kctx.BindTo(ctx, (*context.Context)(nil))
		if err := kctx.Run(e); err != nil {
			var ec exitCodeError
			if errors.As(err, &ec) {
				if ec.msg != "" {
					fmt.Fprintf(stderr, "cekat-archiver: %s\n", displayLines(ec.msg, maxLineRunes))
				}
				return ec.code
			}
			// Errors quote ids and answers from upstream and the configuration.
			fmt.Fprintf(stderr, "cekat-archiver: %s\n", displayLines(err.Error(), maxLineRunes))
			return 1
		}
		return 0
	}()
	return code
}

// exitSignal carries kong's exit (after --help) out of the parser without
// calling os.Exit outside main.
type exitSignal struct{}

// exitCodeError ends a command with a given status.
type exitCodeError struct {
	code int
	msg  string
}

func (e exitCodeError) Error() string { return e.msg }
