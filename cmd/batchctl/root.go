package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Environment variables that stand in for the global flags.
const (
	envServer = "BATCH_SERVER"
	envAPIKey = "BATCH_API_KEY"
)

// defaultServer is the example server's address.
const defaultServer = "http://127.0.0.1:8080"

// Output formats.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// app is one run of batchctl: its streams, environment and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// isTerminal reports whether a stream is a terminal; it picks the
	// output format and the progress display.
	isTerminal func(io.Writer) bool

	server  string
	apiKey  string
	output  string
	timeout time.Duration

	api *client // set up by setup
}

// run executes batchctl with args and returns the exit status.
func run(ctx context.Context, args []string, a *app) int {
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		printError(a.stderr, err)
	}
	return exitCode(err)
}

// newRootCmd builds the command tree for a.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "batchctl",
		Short: "Use the Batch API from a terminal",
		Long: `batchctl submits batch jobs, follows them with a live progress bar, reads their
status, errors, events and artifacts, and manages templates, schedules and webhooks.

The server and API key come from --server and --api-key, or from the environment
variables BATCH_SERVER and BATCH_API_KEY.

Exit status: 0 success; 1 a failed or cancelled job, or any other error; 2 an
invalid request (HTTP 400 such as INVALID_BATCH, or a bad command line);
3 NOT_FOUND; 4 RATE_LIMITED; 5 authentication failure.`,
		Version:           version(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		Args:              noArgs,
		RunE:              func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.setup(cmd) },
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })

	f := root.PersistentFlags()
	f.StringVar(&a.server, "server", "", "Batch API server URL (env "+envServer+", default "+defaultServer+")")
	f.StringVar(&a.apiKey, "api-key", "", "API key sent as a Bearer token (env "+envAPIKey+")")
	f.StringVar(&a.output, "output", "", "output format: table or json (default: table on a terminal, json when piped)")
	f.DurationVar(&a.timeout, "timeout", 30*time.Second, "time limit of each request (not of --wait)")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{outputTable, outputJSON}, cobra.ShellCompDirectiveNoFileComp))

	root.AddGroup(&cobra.Group{ID: "jobs", Title: "Jobs:"}, &cobra.Group{ID: "objects", Title: "Templates, schedules and webhooks:"})
	for _, c := range a.jobCommands() {
		c.GroupID = "jobs"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.templateCommand(), a.scheduleCommand(), a.webhookCommand()} {
		c.GroupID = "objects"
		root.AddCommand(c)
	}
	return root
}

// setup resolves the global flags against the environment and checks them.
func (a *app) setup(cmd *cobra.Command) error {
	flags := cmd.Flags()
	if !flags.Changed("server") {
		a.server = a.getenv(envServer)
		if a.server == "" {
			a.server = defaultServer
		}
	}
	if !flags.Changed("api-key") {
		a.apiKey = a.getenv(envAPIKey)
	}
	switch a.output {
	case "":
		a.output = outputJSON
		if a.isTerminal(a.stdout) {
			a.output = outputTable
		}
	case outputTable, outputJSON:
	default:
		return usageErrorf("--output must be table or json, got %q", a.output)
	}
	c, err := newClient(a.server, a.apiKey, a.timeout)
	if err != nil && !offline(cmd) {
		return err
	}
	a.api = c
	return nil
}

// offline reports whether cmd works without a server (validate, help,
// completion scripts), so a bad BATCH_SERVER does not stop it.
func offline(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		switch c.Name() {
		case "validate", "completion", "help":
			return true
		}
	}
	return false
}

// version is the module version batchctl was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// noArgs refuses arguments; on a command with subcommands it names the
// unknown one.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return usageErrorf("%s; see %s --help", msg, cmd.CommandPath())
	}
	return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
}

// maxArgs accepts at most n arguments.
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageErrorf("%s takes at most %d argument(s), got %d; see %s --help", cmd.CommandPath(), n, len(args), cmd.CommandPath())
		}
		return nil
	}
}

// argNames checks that a command got exactly the named arguments.
func argNames(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageErrorf("%s needs %d argument(s) (%s), got %d; see %s --help",
				cmd.CommandPath(), len(names), strings.Join(names, " "), len(args), cmd.CommandPath())
		}
		return nil
	}
}

// group is a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(subs...)
	return c
}

// pageFlags are the paging flags of a list command.
type pageFlags struct {
	limit  int
	cursor string
	all    bool
}

func (p *pageFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&p.limit, "limit", 0, "page size (server default 50, at most 1000)")
	fs.StringVar(&p.cursor, "cursor", "", "continue from a previous page's next_cursor")
	fs.BoolVar(&p.all, "all", false, "follow next_cursor and print every page")
}

// errInterrupted is returned when the user stops a --wait.
var errInterrupted = errors.New("interrupted")

func wrapCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w (the job goes on on the server)", errInterrupted)
	}
	return err
}
