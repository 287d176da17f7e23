package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// browserPath finds a Chromium to drive: $BATCH_BROWSER, else the usual
// names on PATH. Without one the browser tests skip locally and fail under
// CI (where .ci/run installs chromium-headless-shell).
func browserPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BATCH_BROWSER"); p != "" {
		return p
	}
	for _, name := range []string{"chromium-headless-shell", "headless-shell", "chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium found; CI must install chromium-headless-shell")
	}
	t.Skip("no Chromium found (install chromium-headless-shell, or set BATCH_BROWSER)")
	return ""
}

// startBrowser starts one headless Chromium for a test and its subtests.
// Each subtest opens its own tab (own sessionStorage) with newTab.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := browserPath(t)
	dir, err := os.MkdirTemp("", "batch-chromium-")
	require.NoError(t, err)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 900),
	)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		os.RemoveAll(dir)
	})
	start := time.Now()
	require.NoError(t, chromedp.Do(browser), "starting Chromium at %s", path)
	t.Logf("Chromium started in %v", time.Since(start).Round(time.Millisecond))
	return browser
}

// newTab opens a tab in the shared browser, bounded by timeout. A script
// error or a console error (a CSP violation, say) on the page fails the
// test; failed requests (401, 409) are expected and ignored.
func newTab(t *testing.T, browser context.Context, timeout time.Duration) context.Context {
	tab, cancelTab := chromedp.NewContext(browser)
	ctx, cancel := context.WithTimeout(tab, timeout)
	var mu sync.Mutex
	var problems []string
	require.NoError(t, chromedp.Listen(tab, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *cdpruntime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			problems = append(problems, fmt.Sprintf("uncaught: %s (%s:%d)", msg, d.URL, d.LineNumber))
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				problems = append(problems, fmt.Sprintf("console %s: %s", ev.Entry.Source, ev.Entry.Text))
			}
		}
	}))
	t.Cleanup(func() {
		cancel()
		cancelTab()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Error(p)
		}
	})
	return ctx
}

// uiServer is an engine behind httpapi with a key, for the browser.
type uiServer struct {
	*testBundle
	key string
	// ticks releases the items of "ticked" jobs, one per send.
	ticks chan struct{}
}

func (s *uiServer) ui() string { return s.srv.URL + httpapi.Prefix + "/ui/" }

// api calls the API with the key and returns the data object.
func (s *uiServer) api(t *testing.T, method, path, body string) map[string]any {
	t.Helper()
	res := s.do(t, method, path, body, bearer(s.key)...)
	require.Less(t, res.status, 300, "%s %s: %s", method, path, res.body)
	return res.data
}

func newUIServer(t *testing.T) *uiServer {
	s := &uiServer{key: "s3cret-key", ticks: make(chan struct{})}
	slow := batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		return &batch.Plan{Count: 100000, Item: func(i int64) (batch.Item, error) { return batch.Item{}, nil },
			Run: func(ctx context.Context, it *batch.Item) error {
				select {
				case <-time.After(5 * time.Millisecond):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}, nil
	})
	s.testBundle = setup(t, &httpapi.Options{Authenticator: httpapi.APIKeys(s.key), DisableRateLimits: true},
		&batch.Options{AllowPrivateWebhooks: true, Operations: map[string]batch.Operation{"ticked": gatedOp(s.ticks, 10), "slow": slow}})
	t.Cleanup(s.srv.CloseClientConnections) // first: the page's open streams
	return s
}

// TestDashboard drives the dashboard in a real headless Chromium: one
// browser, one tab per subtest.
func TestDashboard(t *testing.T) {
	browser := startBrowser(t)
	s := newUIServer(t)
	shots := os.Getenv("BATCH_UI_SCREENSHOTS") // a directory to keep screenshots in

	t.Run("wrong key shows the 401 message", func(t *testing.T) {
		ctx := newTab(t, browser, 20*time.Second)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(s.ui()),
			chromedp.WaitVisible(chromedp.CSS("#key")),
			chromedp.SendKeys(chromedp.CSS("#key"), "not-the-key"),
			chromedp.Click(chromedp.CSS("#signin-form button")),
			chromedp.WaitVisible(chromedp.CSS("#flash")),
		))
		msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#flash")))
		require.NoError(t, err)
		require.Contains(t, msg, "401")
		require.Contains(t, msg, "unknown API key")
		stored, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`sessionStorage.getItem('batch.apiKey') !== null`))
		require.NoError(t, err)
		require.False(t, stored, "a refused key is not kept")
	})

	t.Run("sign in and watch a job's bar reach 100% live", func(t *testing.T) {
		ctx := newTab(t, browser, 30*time.Second)
		job := s.api(t, "POST", "/jobs", `{"batch": {"type": "ticks", "description": "ten ticks", "operations": [{"type": "ticked"}], "options": {"max_concurrent": 1}}}`)
		id := job["job_id"].(string)
		bar := `document.querySelector('tr[data-job="` + id + `"] [role=progressbar]')`
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(s.ui()),
			chromedp.WaitVisible(chromedp.CSS("#key")),
			chromedp.SendKeys(chromedp.CSS("#key"), s.key),
			chromedp.Click(chromedp.CSS("#signin-form button")),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-job="`+id+`"]`)),
		))
		// Mark the document: a reload would lose the mark.
		_, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.__noReload = true`))
		require.NoError(t, err)
		start, err := chromedp.Run(ctx, chromedp.Evaluate[string](bar+`.getAttribute('aria-valuenow')`))
		require.NoError(t, err)
		require.Equal(t, "0", start)

		// Each item finishes once the bar shows the one before it finished:
		// the bar moves through every value, in the page it was loaded in.
		for i := 1; i <= 10; i++ {
			select {
			case s.ticks <- struct{}{}:
			case <-ctx.Done():
				t.Fatal("the job did not take its items")
			}
			want := strconv.Itoa(10 * i)
			_, err = chromedp.Run(ctx, chromedp.Poll[bool](bar+`.getAttribute('aria-valuenow') === '`+want+`'`,
				chromedp.WithPollingTimeout(10*time.Second)))
			require.NoError(t, err, "the bar shows %s%%; engine: %+v", want, s.job(t, id).Progress)
		}
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](bar+`.getAttribute('aria-valuenow') === '100' && document.querySelector('tr[data-job="`+id+`"] [data-state]').dataset.state === 'completed'`,
			chromedp.WithPollingTimeout(10*time.Second)))
		if err != nil {
			row, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('tr[data-job="`+id+`"]').outerHTML`))
			t.Fatalf("the bar did not reach 100%% with the row completed: %v\n%s\nengine: %+v", err, row, s.job(t, id).Progress)
		}
		same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload === true`))
		require.NoError(t, err)
		require.True(t, same, "the page was not reloaded")
		fed, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`performance.getEntriesByType('resource').map(e => new URL(e.name).pathname).filter(p => p.includes('/jobs/`+id+`'))`))
		require.NoError(t, err)
		require.Equal(t, []string{httpapi.Prefix + "/jobs/" + id + "/stream"}, fed, "the bar is fed by the job's stream, not by polling")
		screenshot(t, ctx, shots, "jobs")
	})

	t.Run("job page: errors paged, pause and resume", func(t *testing.T) {
		ctx := newTab(t, browser, 40*time.Second)
		// 25 creates collide with existing fields: 25 errors.
		var recs []string
		for i := range 25 {
			recs = append(recs, fmt.Sprintf(`{"id": "field%03d"}`, i))
		}
		failed := s.api(t, "POST", "/jobs?wait=10s", `{"batch": {"type": "collide", "operations": [{"type": "create", "resource": "fields", "records": [`+strings.Join(recs, ",")+`]}]}}`)
		fid := failed["job_id"].(string)
		// Sign in through the fragment, straight onto the list.
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(s.ui()+"#key="+s.key),
			chromedp.WaitVisible(chromedp.CSS(`a[href="#/jobs/`+fid+`"]`)),
		))
		loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
		require.NoError(t, err)
		require.NotContains(t, loc, s.key, "the key leaves the address bar")
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS(`a[href="#/jobs/`+fid+`"]`)),
			chromedp.WaitVisible(chromedp.CSS("#errors tbody tr")),
		))
		rows := func() []string {
			v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#errors tbody tr')].map(r => r.cells[3].textContent)`))
			require.NoError(t, err)
			return v
		}
		var all []string
		page1 := rows()
		require.Len(t, page1, 10)
		all = append(all, page1...)
		for _, want := range []int{10, 5} {
			prev := rows()[0]
			require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#errors .toolbar button:nth-child(2)`))))
			_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('#errors tbody tr').cells[3].textContent !== '`+prev+`'`, chromedp.WithPollingTimeout(5*time.Second)))
			require.NoError(t, err)
			page := rows()
			require.Len(t, page, want)
			all = append(all, page...)
		}
		require.Len(t, all, 25)
		require.Equal(t, "field000", all[0])
		require.Equal(t, "field024", all[24])
		next, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#errors .toolbar button:nth-child(2)').disabled`))
		require.NoError(t, err)
		require.True(t, next, "no page after the last")
		code, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#errors tbody tr').cells[0].textContent`))
		require.NoError(t, err)
		require.Equal(t, "RESOURCE_ERROR", code)
		screenshot(t, ctx, shots, "job-errors")

		// A long job: pause it from its page, then resume it.
		live := s.api(t, "POST", "/jobs", `{"batch": {"type": "slow", "description": "a long job", "operations": [{"type": "slow"}], "options": {"max_concurrent": 2}}}`)
		lid := live["job_id"].(string)
		state := `document.querySelector('#job-state [data-state]').dataset.state`
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(s.ui()+"#/jobs/"+lid)))
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](state+` === 'running'`, chromedp.WithPollingTimeout(10*time.Second)))
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.Search(`//button[text()="Pause"]`))))
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](state+` === 'paused'`, chromedp.WithPollingTimeout(10*time.Second)))
		require.NoError(t, err)
		require.Equal(t, batch.StatePaused, s.job(t, lid).Status)
		disabled, err := chromedp.Run(ctx, chromedp.Evaluate[[]bool](`[...document.querySelectorAll('#main .toolbar button')].slice(0, 4).map(b => b.disabled)`))
		require.NoError(t, err)
		require.Equal(t, []bool{true, false, false, true}, disabled, "paused: resume and cancel, not pause or delete")
		screenshot(t, ctx, shots, "job-paused")
		require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.Search(`//button[text()="Resume"]`))))
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](state+` === 'running'`, chromedp.WithPollingTimeout(10*time.Second)))
		require.NoError(t, err)
		require.Equal(t, batch.StateRunning, s.job(t, lid).Status)

		// Behind the page's back the job is cancelled; the page follows,
		// and a pause the state forbids is a 409 message, not a broken page.
		s.api(t, "POST", "/jobs/"+lid+"/cancel", "")
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](state+` === 'cancelled'`, chromedp.WithPollingTimeout(10*time.Second)))
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#main .toolbar button').disabled = false`),
			chromedp.Click(chromedp.Search(`//button[text()="Pause"]`)),
			chromedp.Poll[chromedp.Void](`document.querySelector('#flash').textContent.includes('409')`, chromedp.WithPollingTimeout(5*time.Second)),
		))
		msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#flash")))
		require.NoError(t, err)
		require.Contains(t, msg, "Cannot pause")
	})

	t.Run("create a job from a template through its form", func(t *testing.T) {
		ctx := newTab(t, browser, 30*time.Second)
		tpl := s.api(t, "POST", "/templates", `{"template": {
			"name": "retag", "description": "Set the stage, crop and priority of the inactive fields",
			"parameters": [
				{"name": "stage", "type": "string", "required": true, "enum": ["seedling", "harvest"]},
				{"name": "crop_type", "type": "string", "required": true, "description": "What grows there"},
				{"name": "priority", "type": "integer", "default": 1},
				{"name": "organic", "type": "boolean"}
			],
			"operations": [{"type": "update", "resource": "fields", "filter": {"status": "inactive"},
				"template": {"stage": "${stage}", "crop_type": "${crop_type}", "priority": "${priority}", "organic": "${organic}"}}]
		}}`)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(s.ui()+"#key="+s.key),
			chromedp.WaitVisible(chromedp.CSS(`a[href="#/templates"]`)),
			chromedp.Click(chromedp.CSS(`a[href="#/templates"]`)),
			chromedp.WaitVisible(chromedp.CSS(`a[href="#/templates/`+tpl["id"].(string)+`"]`)),
			chromedp.Click(chromedp.CSS(`a[href="#/templates/`+tpl["id"].(string)+`"]`)),
			chromedp.WaitVisible(chromedp.CSS("#create-job")),
		))
		kinds, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#create-job [name]')].map(i => i.name + ':' + i.tagName.toLowerCase() + ':' + (i.type || '') + ':' + i.required)`))
		require.NoError(t, err)
		require.Equal(t, []string{"stage:select:select-one:true", "crop_type:input:text:true", "priority:input:number:false", "organic:input:checkbox:false"}, kinds)
		labels, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll('#create-job [name]')].filter(i => i.labels.length === 1).length`))
		require.NoError(t, err)
		require.Equal(t, 4, labels, "every control has its label")
		screenshot(t, ctx, shots, "template-form")
		require.NoError(t, chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS("#param-stage"), `"harvest"`),
			chromedp.SendKeys(chromedp.CSS("#param-crop_type"), "rice"),
			chromedp.SetValue(chromedp.CSS("#param-priority"), "3"),
			chromedp.Click(chromedp.CSS("#param-organic")),
			chromedp.Click(chromedp.CSS("#create-job button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#job-state")),
		))
		hash, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash`))
		require.NoError(t, err)
		id := strings.TrimPrefix(hash, "#/jobs/")
		require.NotEqual(t, hash, id, "the page went to the new job")
		job, err := s.e.Wait(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, batch.StateCompleted, job.Status)
		require.Equal(t, tpl["id"], job.TemplateID)
		require.Equal(t, int64(100), job.Progress.Completed, "the 100 inactive fields")
		fields, err := s.e.Collection("fields")
		require.NoError(t, err)
		rec, err := fields.Get(t.Context(), "field001")
		require.NoError(t, err)
		require.Equal(t, "harvest", rec["stage"])
		require.Equal(t, "rice", rec["crop_type"])
		require.EqualValues(t, 3, rec["priority"])
		require.Equal(t, true, rec["organic"])
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('#job-state [data-state]').dataset.state === 'completed'`, chromedp.WithPollingTimeout(10*time.Second)))
		require.NoError(t, err, "the job page follows the new job to its end")
	})

	t.Run("schedules in their zone, webhooks with their deliveries", func(t *testing.T) {
		tpl := s.api(t, "POST", "/templates", `{"template": {"name": "touch", "operations": [{"type": "update", "resource": "fields", "filter": {"status": "active"}, "template": {"touched": true}}]}}`)
		sched := s.api(t, "POST", "/schedules", `{"schedule": {"name": "Nightly touch", "batch": {"template_id": "`+tpl["id"].(string)+`"}, "timing": {"frequency": "daily", "time": "06:00", "timezone": "Asia/Tokyo"}}}`)
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		defer rcv.Close()
		hook := s.api(t, "POST", "/webhooks", `{"webhook": {"url": "`+rcv.URL+`/hook", "events": ["job_completed"], "description": "ops channel"}}`)
		hookID := hook["id"].(string)
		s.api(t, "POST", "/jobs?wait=10s", `{"batch": {"operations": [{"type": "update", "resource": "fields", "filter": {"status": "active"}, "update": {"seen": true}}]}}`)
		require.Eventually(t, func() bool {
			d := s.api(t, "GET", "/webhooks/"+hookID+"/deliveries", "")
			list, _ := d["deliveries"].([]any)
			return len(list) == 1 && list[0].(map[string]any)["status"] == "delivered"
		}, 10*time.Second, 10*time.Millisecond)

		ctx := newTab(t, browser, 20*time.Second)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(s.ui()+"#key="+s.key),
			chromedp.WaitVisible(chromedp.CSS(`a[href="#/schedules"]`)),
			chromedp.Click(chromedp.CSS(`a[href="#/schedules"]`)),
			chromedp.WaitVisible(chromedp.CSS(`a[href="#/schedules/`+sched["id"].(string)+`"]`)),
		))
		row, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelector('#main tbody tr').cells].map(c => c.textContent)`))
		require.NoError(t, err)
		require.Equal(t, "Nightly touch", row[0])
		require.Equal(t, "active", row[1])
		require.Contains(t, row[3], "6:00:00", "the next run on Tokyo's wall clock")
		require.Contains(t, row[3], "GMT+9")
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS(`a[href="#/schedules/`+sched["id"].(string)+`"]`)),
			chromedp.WaitVisible(chromedp.CSS("#next-run")),
		))
		runs, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#main ol li')].map(li => li.textContent)`))
		require.NoError(t, err)
		require.Len(t, runs, 5)
		for _, r := range runs {
			require.Contains(t, r, "6:00:00")
		}
		screenshot(t, ctx, shots, "schedule")

		require.NoError(t, chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS(`a[href="#/webhooks"]`)),
			chromedp.WaitVisible(chromedp.CSS(`a[href="#/webhooks/`+hookID+`"]`)),
			chromedp.Click(chromedp.CSS(`a[href="#/webhooks/`+hookID+`"]`)),
			chromedp.WaitVisible(chromedp.CSS("#deliveries tbody tr")),
		))
		cells, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelector('#deliveries tbody tr').cells].map(c => c.textContent)`))
		require.NoError(t, err)
		require.Equal(t, "job_completed", cells[1])
		require.Equal(t, "delivered", cells[3])
		require.Equal(t, "HTTP 204", cells[5])
		screenshot(t, ctx, shots, "webhook")
	})

	t.Run("download an artifact", func(t *testing.T) {
		exp := s.api(t, "POST", "/jobs?wait=10s", `{"batch": {"type": "export", "operations": [{"type": "export", "resource": "fields", "filter": {"status": "active"}, "destination": {"format": "csv"}}]}}`)
		id := exp["job_id"].(string)
		ctx := newTab(t, browser, 20*time.Second)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(s.ui()+"#key="+s.key),
			chromedp.WaitVisible(chromedp.CSS(`a[href="#/jobs/`+id+`"]`)),
			chromedp.Click(chromedp.CSS(`a[href="#/jobs/`+id+`"]`)),
			chromedp.WaitVisible(chromedp.Search(`//button[starts-with(text(), "Download ")]`)),
			// Keep what the page hands to the browser's download.
			chromedp.Evaluate[chromedp.Void](`window.__blobs = []; { const o = URL.createObjectURL; URL.createObjectURL = b => { __blobs.push(b); return o(b); }; }`),
			chromedp.Click(chromedp.Search(`//button[starts-with(text(), "Download ")]`)),
		))
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`window.__blobs.length === 1`, chromedp.WithPollingTimeout(5*time.Second)))
		require.NoError(t, err)
		text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.__blobs[0].text()`, chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		require.Equal(t, 101, strings.Count(text, "\n"), "a header and the 100 active fields")
	})

	t.Run("follows the mount", func(t *testing.T) {
		job := s.api(t, "POST", "/jobs", `{"batch": {"operations": [{"type": "update", "resource": "fields", "filter": {"status": "none"}, "update": {"x": 1}}]}}`)
		// The same API mounted under /admin behind http.StripPrefix: the
		// page's relative URLs reach it there.
		mux := http.NewServeMux()
		mux.Handle("/admin/", http.StripPrefix("/admin", httpapi.New(s.e, &httpapi.Options{Authenticator: httpapi.APIKeys(s.key), DisableRateLimits: true})))
		srv := httptest.NewServer(mux)
		defer srv.Close()
		ctx := newTab(t, browser, 20*time.Second)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/admin"+httpapi.Prefix+"/ui/#key="+s.key),
			chromedp.WaitVisible(chromedp.CSS(`a[href="#/jobs/`+job["job_id"].(string)+`"]`)),
		))
		entries, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)`))
		require.NoError(t, err)
		require.Contains(t, entries, "/admin"+httpapi.Prefix+"/jobs")
		for _, p := range entries {
			require.True(t, strings.HasPrefix(p, "/admin/"), "every request stays under the mount: %s", p)
		}
	})

	t.Run("accessible: labels, names, keyboard", func(t *testing.T) {
		ctx := newTab(t, browser, 20*time.Second)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(s.ui()), chromedp.WaitVisible(chromedp.CSS("#key"))))
		focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
		require.NoError(t, err)
		require.Equal(t, "key", focused, "the key field has the focus")
		// lowContrast lists visible text below WCAG AA contrast (4.5:1, 3:1
		// for large text) against the background it is drawn on.
		_, err = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.lowContrast = () => {
			const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
			const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
			const bg = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length === 3 || c[3] > 0) return c; } return [255, 255, 255]; };
			const out = [];
			for (const el of document.querySelectorAll('body *')) {
				if (!el.offsetParent || ![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
				const st = getComputedStyle(el);
				const a = lum(rgb(st.color)), b = lum(bg(el));
				const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
				const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
				const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
				if (ratio < need) out.push('contrast ' + ratio.toFixed(2) + ' < ' + need + ': ' + el.outerHTML.slice(0, 120));
			}
			return out;
		}`))
		require.NoError(t, err)
		low, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`lowContrast()`))
		require.NoError(t, err)
		require.Empty(t, low, "the sign-in page")
		low, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](`{ const p = document.createElement('p'); p.style.color = '#aaaaaa'; p.textContent = 'faint'; document.querySelector('#main').append(p); const r = lowContrast(); p.remove(); r; }`))
		require.NoError(t, err)
		require.Len(t, low, 1, "the contrast check sees faint text")
		// Keyboard only: type the key and press Enter.
		require.NoError(t, chromedp.Do(ctx,
			chromedp.KeyEvent(s.key+"\r"),
			chromedp.Poll[chromedp.Void](`document.querySelector('#view').dataset.shown === '#/jobs'`, chromedp.WithPollingTimeout(5*time.Second)),
		))
		job := s.api(t, "POST", "/jobs?wait=10s", `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [{"id": "field000"}]}]}}`)
		tpl := s.api(t, "POST", "/templates", `{"template": {"name": "a11y", "parameters": [{"name": "n", "type": "integer", "required": true}, {"name": "when", "type": "date"}, {"name": "tags", "type": "array"}],
			"operations": [{"type": "update", "resource": "fields", "filter": {"status": "active"}, "template": {"n": "${n}"}}]}}`)
		for _, hash := range []string{"#/jobs", "#/jobs/" + job["job_id"].(string), "#/templates", "#/templates/" + tpl["id"].(string), "#/schedules", "#/webhooks"} {
			require.NoError(t, chromedp.Do(ctx,
				chromedp.Evaluate[chromedp.Void](`location.hash = '`+hash+`'`),
				chromedp.Poll[chromedp.Void](`document.querySelector('#view').dataset.shown === '`+hash+`'`, chromedp.WithPollingTimeout(5*time.Second))))
			problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[
				...[...document.querySelectorAll('input, select, textarea')].filter(i => i.offsetParent && !i.labels.length).map(i => 'no label: ' + i.outerHTML),
				...[...document.querySelectorAll('button, a[href]')].filter(b => b.offsetParent && !b.textContent.trim() && !b.getAttribute('aria-label')).map(b => 'no name: ' + b.outerHTML),
				...[...document.querySelectorAll('[role=progressbar]')].filter(b => !b.getAttribute('aria-label')).map(b => 'unnamed bar'),
				...([...document.querySelectorAll('h1')].filter(h => h.offsetParent).length === 1 ? [] : ['not one h1']),
				...lowContrast(),
			]`))
			require.NoError(t, err)
			require.Empty(t, problems, hash)
		}
	})

	t.Run("jobs list: filter by state, page", func(t *testing.T) {
		for range 20 {
			s.api(t, "POST", "/jobs", `{"batch": {"type": "noop", "operations": [{"type": "update", "resource": "fields", "filter": {"status": "none"}, "update": {"x": 1}}]}}`)
		}
		total := len(s.api(t, "GET", "/jobs?limit=1000", "")["jobs"].([]any))
		require.Greater(t, total, 20)
		ctx := newTab(t, browser, 20*time.Second)
		ids := func() []string {
			v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('tr[data-job]')].map(r => r.dataset.job + ':' + r.querySelector('[data-state]').dataset.state)`))
			require.NoError(t, err)
			return v
		}
		shown := func(hash string) { // waits until the view for hash (or a hash starting so, with "*") is shown
			test := `=== '` + hash + `'`
			if p, ok := strings.CutSuffix(hash, "*"); ok {
				test = `.startsWith('` + p + `')`
			}
			_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`(document.querySelector('#view').dataset.shown || '')`+test, chromedp.WithPollingTimeout(5*time.Second)))
			require.NoError(t, err)
		}
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(s.ui()+"#key="+s.key)))
		shown("#/jobs")
		first := ids()
		require.Len(t, first, 20)
		require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.Search(`//button[text()="Next page"]`))))
		shown("#/jobs?cursor=*")
		second := ids()
		require.Len(t, second, total-20)
		require.NotContains(t, first, second[0])
		require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.Search(`//button[text()="Previous page"]`))))
		shown("#/jobs")
		require.Equal(t, first, ids())

		// The state filter, by keyboard: the focus stays on it.
		require.NoError(t, chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS("#state-filter"), "cancelled"),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#state-filter').dispatchEvent(new Event('change'))`),
		))
		shown("#/jobs?state=cancelled")
		cancelled := ids()
		require.NotEmpty(t, cancelled)
		for _, j := range cancelled {
			require.True(t, strings.HasSuffix(j, ":cancelled"), j)
		}
		focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
		require.NoError(t, err)
		require.Equal(t, "state-filter", focused)
	})

	t.Run("phone width", func(t *testing.T) {
		s.api(t, "POST", "/jobs?wait=10s", `{"batch": {"type": "phone", "description": "a job with a long description that wraps on a phone", "operations": [{"type": "update", "resource": "fields", "filter": {"status": "none"}, "update": {"x": 1}}]}}`)
		ctx := newTab(t, browser, 20*time.Second)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.EmulateViewport(375, 740),
			chromedp.Navigate(s.ui()+"#key="+s.key),
			chromedp.WaitVisible(chromedp.CSS("#main tbody tr")),
		))
		overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
		require.NoError(t, err)
		require.False(t, overflow, "no sideways scrolling of the page at 375px")
		right, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`Math.max(...[...document.querySelectorAll('#main *')].filter(e => e.offsetParent && !e.closest('.table-wrap')).map(e => e.getBoundingClientRect().right))`))
		require.NoError(t, err)
		require.LessOrEqual(t, right, 375.0, "nothing outside a table sticks out of the screen")
		screenshot(t, ctx, shots, "phone")
	})
}

// job reads a job from the engine.
func (s *uiServer) job(t *testing.T, id string) *batch.Job {
	t.Helper()
	j, err := s.e.Job(t.Context(), id)
	require.NoError(t, err)
	return j
}

// screenshot keeps a PNG of the tab in dir, when dir is set.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}
