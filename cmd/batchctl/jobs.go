package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batchworks/batch"
)

// jobKind describes jobs. They are submitted rather than created, and
// their ids complete with their status and type.
var jobKind = &objectKind{
	name: "job", plural: "jobs", idArg: "JOB_ID",
	complete: func(a *app) cobra.CompletionFunc { return a.completeJobs },
	listTable: func(t *tableWriter, items []json.RawMessage) {
		rows(t, items, []any{"JOB ID", "STATUS", "TYPE", "PROGRESS", "FAILED", "CREATED", "DESCRIPTION"}, func(j *batch.Job) []any {
			return []any{j.ID, j.Status, j.Type, progressText(&j.Progress), j.Progress.Failed, j.CreatedAt, j.Description}
		})
	},
	showTable: jobTable,
}

// jobCommands are the commands on jobs.
func (a *app) jobCommands() []*cobra.Command {
	return []*cobra.Command{
		a.submitCommand(), a.validateCommand(),
		a.requestCommand(jobKind, "status", "Show a job's status, progress, errors and results", http.MethodGet, ""),
		a.listCommand(), a.waitCommand(),
		a.objectAction(jobKind, "pause", "Pause a running or queued job"),
		a.objectAction(jobKind, "resume", "Resume a paused job"),
		a.objectAction(jobKind, "cancel", "Cancel a job"),
		a.deleteCommand(jobKind, "Delete a finished job with its items and artifacts"),
		a.errorsCommand(), a.eventsCommand(), a.artifactCommand(),
	}
}

// jobPath is the API path of a job, with an optional suffix ("/errors").
func jobPath(id, suffix string) string {
	return jobKind.path(id) + suffix
}

// waitFlags are the flags of commands that can follow a job.
type waitFlags struct {
	wait         bool
	waitTimeout  time.Duration
	pollInterval time.Duration
	quiet        bool
}

func (w *waitFlags) register(cmd *cobra.Command, withWait bool) {
	fs := cmd.Flags()
	if withWait {
		fs.BoolVar(&w.wait, "wait", false, "follow the job to its end with a progress bar; exit 1 if it fails")
	}
	fs.DurationVar(&w.waitTimeout, "wait-timeout", 0, "give up following after this long (0: no limit)")
	fs.DurationVar(&w.pollInterval, "poll-interval", time.Second, "how often to poll a server without a progress stream")
	fs.BoolVarP(&w.quiet, "quiet", "q", false, "no progress on stderr")
}

// submitFlags are the flags of commands that submit a job.
type submitFlags struct {
	waitFlags
	idempotencyKey string
}

func (s *submitFlags) register(cmd *cobra.Command) {
	s.waitFlags.register(cmd, true)
	cmd.Flags().StringVar(&s.idempotencyKey, "idempotency-key", "", "send an Idempotency-Key: the same key within 24 hours returns the first job")
}

func (a *app) submitCommand() *cobra.Command {
	var sf submitFlags
	cmd := &cobra.Command{
		Use:   "submit FILE|-",
		Short: "Submit a batch job from a JSON or YAML file (- reads stdin)",
		Long: `Submit a batch job. FILE holds the batch as JSON or YAML, either as the API's
request body {"batch": {...}} or as the batch object itself; "-" reads stdin.

With --wait, batchctl follows the job with a live progress bar (one line per
update when stderr is not a terminal), prints the finished job, and exits 1
when the job failed or was cancelled.`,
		Example: `  batchctl submit update-fields.yaml --wait
  cat job.json | batchctl submit - --output json`,
		Args: argNames("FILE|-"),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := a.readInput(args[0])
			if err != nil {
				return err
			}
			return a.submit(cmd.Context(), wrap("batch", unwrapObject(doc, "batch")), sf)
		},
	}
	sf.register(cmd)
	return cmd
}

// submit submits a job (body is the API's request body), then prints it,
// or follows it with --wait.
func (a *app) submit(ctx context.Context, body []byte, sf submitFlags) error {
	var hdr http.Header
	if sf.idempotencyKey != "" {
		hdr = http.Header{"Idempotency-Key": {sf.idempotencyKey}}
	}
	raw, err := a.api.do(ctx, http.MethodPost, "/jobs", nil, body, hdr)
	if err != nil {
		return err
	}
	wf := sf.waitFlags
	var job batch.Job
	if err := decodeData(raw, &job); err != nil {
		return err
	}
	if !wf.wait {
		return a.print(raw, func(t *tableWriter) { jobTable(t, raw) })
	}
	if !wf.quiet {
		fmt.Fprintf(a.stderr, "submitted job %s\n", job.ID)
	}
	return a.waitJob(ctx, job.ID, wf)
}

// waitJob follows a job to its end, prints it, and returns a *jobError
// when it failed or was cancelled.
func (a *app) waitJob(ctx context.Context, id string, wf waitFlags) error {
	if wf.waitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wf.waitTimeout)
		defer cancel()
	}
	view := a.newProgressView(id, wf.quiet)
	f := &follower{api: a.api, view: view, pollInterval: wf.pollInterval, log: a.stderr}
	job, raw, err := f.follow(ctx, id)
	view.close(job)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded && wf.waitTimeout > 0 {
			return fmt.Errorf("job %s did not finish within %s (it goes on on the server)", id, wf.waitTimeout)
		}
		return wrapCtx(ctx, err)
	}
	if err := a.print(raw, func(t *tableWriter) { jobTable(t, raw) }); err != nil {
		return err
	}
	if job.Status == batch.StateFailed || job.Status == batch.StateCancelled {
		return &jobError{ID: job.ID, Status: job.Status, Err: job.Error}
	}
	return nil
}

func (a *app) validateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE|-",
		Short: "Check a batch file without submitting it",
		Long: `Check that FILE (JSON or YAML, wrapped as {"batch": {...}} or not) is a well-formed
batch: valid syntax, known fields, values of the right types. Nothing is sent
to the server. Operation types, resources and expressions are checked by the
server when the batch is submitted. Exits 2 with one line per problem when the
file is not valid.`,
		Args: argNames("FILE|-"),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := a.readInput(args[0])
			if err != nil {
				return err
			}
			b, err := batch.DecodeBatch(unwrapObject(doc, "batch"))
			if err != nil {
				return localInvalid(err)
			}
			if len(b.Operations) == 0 && b.TemplateID == "" {
				return localInvalid(&batch.Error{Code: batch.CodeInvalidBatch, Message: "Invalid batch job configuration",
					Details: []batch.Detail{{Field: "operations", Code: batch.DetailRequired, Message: "a batch needs at least one operation"}}})
			}
			out := map[string]any{"valid": true, "operations": len(b.Operations)}
			if b.TemplateID != "" {
				out["template_id"] = b.TemplateID
			}
			return a.print(marshalJSON(out), func(t *tableWriter) {
				if b.TemplateID != "" {
					t.row(fmt.Sprintf("%s: valid (template %s)", args[0], b.TemplateID))
					return
				}
				t.row(fmt.Sprintf("%s: valid, %d operation(s)", args[0], len(b.Operations)))
			})
		},
	}
}

func (a *app) listCommand() *cobra.Command {
	var pf pageFlags
	var state string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Example: `  batchctl list --state running
  batchctl list --limit 20 --cursor <next_cursor>
  batchctl list --all --output json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
			}
			return a.listPages(cmd.Context(), jobKind.path(""), q, pf, jobKind.plural, jobKind.listTable)
		},
	}
	pf.register(cmd.Flags())
	cmd.Flags().StringVar(&state, "state", "", "only jobs in this state: "+statesText())
	_ = cmd.RegisterFlagCompletionFunc("state", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		var s []string
		for _, st := range batch.States() {
			s = append(s, string(st))
		}
		return s, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func statesText() string {
	var s []string
	for _, st := range batch.States() {
		s = append(s, string(st))
	}
	return strings.Join(s, ", ")
}

// listPages GETs a paged list whose items sit under key, following
// next_cursor with --all, and prints it. JSON output is the API's page
// object; with --all, one object with every item.
func (a *app) listPages(ctx context.Context, path string, q url.Values, pf pageFlags, key string, table func(*tableWriter, []json.RawMessage)) error {
	if pf.limit != 0 {
		q.Set("limit", strconv.Itoa(pf.limit))
	}
	cursor := pf.cursor
	var items []json.RawMessage
	var last json.RawMessage
	var next string
	for {
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		raw, err := a.api.get(ctx, path, q, nil)
		if err != nil {
			return err
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(raw, &page); err != nil {
			return fmt.Errorf("reading the server's answer: %w", err)
		}
		var these []json.RawMessage
		if err := json.Unmarshal(page[key], &these); err != nil && page[key] != nil {
			return fmt.Errorf("reading the server's answer: %w", err)
		}
		items = append(items, these...)
		last = raw
		next = ""
		_ = json.Unmarshal(page["next_cursor"], &next)
		if !pf.all || next == "" {
			break
		}
		cursor = next
	}
	out := last
	if pf.all {
		if items == nil {
			items = []json.RawMessage{}
		}
		out = marshalJSON(map[string]any{key: items})
	}
	if err := a.print(out, func(t *tableWriter) { table(t, items) }); err != nil {
		return err
	}
	if next != "" && a.output == outputTable {
		fmt.Fprintf(a.stderr, "more: --cursor %s (or --all)\n", next)
	}
	return nil
}

func (a *app) waitCommand() *cobra.Command {
	var wf waitFlags
	cmd := a.onObject(jobKind, "wait", "Follow a job to its end with a progress bar; exit 1 if it failed", func(cmd *cobra.Command, id string) error {
		return a.waitJob(cmd.Context(), id, wf)
	})
	cmd.Long = `Follow a job until it completes, fails or is cancelled, showing a live progress
bar on stderr (one line per update when stderr is not a terminal), then print
the job. Exits 0 when it completed (even with failed items: see the counts) and
1 when it failed or was cancelled.`
	wf.register(cmd, false)
	return cmd
}

func (a *app) errorsCommand() *cobra.Command {
	return a.pagesCommand(jobKind, "errors", "List a job's failed items", func(t *tableWriter, items []json.RawMessage) {
		rows(t, items, []any{"INDEX", "OPERATION", "RESOURCE", "CODE", "ATTEMPTS", "STATUS", "MESSAGE"}, func(e *itemError) []any {
			return []any{e.OperationIndex, e.operation(), e.ResourceID, e.Error.Code, e.Attempts, e.Status, e.Error.Message}
		})
	})
}

func (a *app) eventsCommand() *cobra.Command {
	return a.pagesCommand(jobKind, "events", "Show a job's audit trail, oldest first", func(t *tableWriter, items []json.RawMessage) {
		rows(t, items, []any{"AT", "TYPE", "PRINCIPAL", "STATUS", "DETAILS"}, func(e *batch.AuditEvent) []any {
			rest := map[string]any{}
			for k, v := range e.Details {
				if k != "status" {
					rest[k] = v
				}
			}
			details := ""
			if len(rest) > 0 {
				details = string(marshalJSON(rest))
			}
			return []any{e.At, e.Type, e.Principal, e.Details["status"], details}
		})
	})
}

// itemError is a failed item as the API writes it. It is read from the
// JSON rather than through batch.ItemError so that fields a server may or
// may not send are shown when present.
type itemError struct {
	// OperationIndex is the item's number in the job (the document's name).
	OperationIndex int64 `json:"operation_index"`
	// BatchOperation is the place of the item's operation in the batch.
	BatchOperation *int            `json:"batch_operation"`
	ResourceID     string          `json:"resource_id"`
	Error          batch.ErrorBody `json:"error"`
	Attempts       int             `json:"attempts"`
	Status         string          `json:"status"`
}

// operation is the item's operation place, or "-".
func (e *itemError) operation() any {
	if e.BatchOperation == nil {
		return nil
	}
	return *e.BatchOperation
}

// jobTable draws a job (the API's JSON) as key-value lines, then its
// results and errors.
func jobTable(t *tableWriter, raw json.RawMessage) {
	var j batch.Job
	var inline struct {
		Errors []itemError `json:"errors"`
	}
	_ = json.Unmarshal(raw, &j)
	_ = json.Unmarshal(raw, &inline)
	t.kv("Job", j.ID)
	t.kv("Status", j.Status)
	t.kv("Type", j.Type)
	t.kv("Description", j.Description)
	t.kv("Template", j.TemplateID)
	t.kv("Schedule", j.ScheduleID)
	t.kv("Created", j.CreatedAt)
	t.kv("Started", j.StartedAt)
	t.kv("Finished", j.FinishedAt)
	if !j.Status.Final() {
		t.kv("Estimated completion", j.EstimatedCompletion)
	}
	t.kv("Progress", progressText(&j.Progress)+fmt.Sprintf(", %d failed", j.Progress.Failed))
	if c := j.Progress.CurrentOperation; c != nil && !j.Status.Final() {
		t.kv("Current operation", fmt.Sprintf("#%d %s %s", c.Index, c.Type, c.ResourceID))
	}
	if s := j.Statistics; s != nil {
		t.kv("Success rate", fmt.Sprintf("%.1f%%", s.SuccessRate))
		t.kv("Average operation time", s.AverageOperationTime.String())
		if !j.Status.Final() {
			t.kv("Estimated remaining", s.EstimatedRemainingTime.String())
		}
	}
	if j.Error != nil {
		t.kv("Error", fmt.Sprintf("%s: %s", j.Error.Code, j.Error.Message))
	}
	if len(j.Results) > 0 {
		t.blank()
		t.row("RESULT", "TYPE", "ARTIFACT", "SIZE", "SUMMARY")
		for _, r := range j.Results {
			name, size := "", ""
			if r.Artifact != nil {
				name, size = r.Artifact.Name, strconv.FormatInt(r.Artifact.Size, 10)
			}
			summary := ""
			if r.Summary != nil {
				summary = string(marshalJSON(r.Summary))
			}
			t.row(r.OperationIndex, r.Type, name, size, summary)
		}
	}
	if len(inline.Errors) > 0 {
		t.blank()
		t.row("ERROR INDEX", "OPERATION", "RESOURCE", "CODE", "ATTEMPTS", "MESSAGE")
		for _, e := range inline.Errors {
			t.row(e.OperationIndex, e.operation(), e.ResourceID, e.Error.Code, e.Attempts, e.Error.Message)
		}
		if n := int64(len(inline.Errors)); n < j.Progress.Failed {
			t.row(fmt.Sprintf("... %d more: batchctl errors %s", j.Progress.Failed-n, j.ID))
		}
	}
}

// progressText is "done/total (pct%)".
func progressText(p *batch.Progress) string {
	return fmt.Sprintf("%d/%d (%d%%)", p.Completed+p.Failed, p.TotalOperations, p.Percentage)
}
