package batch

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openObjects opens an engine on a real bbolt file.
func openObjects(t *testing.T) *Engine {
	t.Helper()
	e, err := Open(t.TempDir()+"/objects.db", &Options{AllowPrivateWebhooks: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	return e
}

func testTemplate(name string) *Template {
	return &Template{Name: name, Operations: []OperationSpec{{Type: OpCleanup, Template: map[string]any{"older_than": "1h"}}}}
}

// Concurrent updates of one object apply one after the other: each of n
// read-modify-write changes appends to what the one before it left, so
// all n survive.
func TestObjects_ConcurrentUpdatesAllSurvive(t *testing.T) {
	t.Parallel()
	e := openObjects(t)
	ctx := t.Context()
	tpl, err := e.CreateTemplate(ctx, testTemplate("counter"))
	require.NoError(t, err)
	const n = 40
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := e.templateStore().update(ctx, tpl.ID, EventTemplateUpdated, func(_ *wtx, _, t *Template) error {
				t.Description += "x"
				return nil
			})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	got, err := e.Template(ctx, tpl.ID)
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("x", n), got.Description, "every update survives")
	require.Equal(t, tpl.CreatedAt, got.CreatedAt, "the creation time stays")
	require.Equal(t, tpl.Owner, got.Owner)
	events, err := e.AuditEvents(ctx, &PageOptions{Limit: 1000})
	require.NoError(t, err)
	updates := 0
	for _, ev := range events.Items {
		if ev.Type == EventTemplateUpdated {
			updates++
		}
	}
	require.Equal(t, n, updates, "one audit event per update")
}

// Pause and resume race on one schedule: each reads the state and
// changes it in one transaction, so the successful ones alternate, as if
// they had run one at a time. (Reading first and writing in a later
// transaction let several pauses of the same active schedule all
// succeed.)
func TestObjects_ConcurrentPauseResumeAlternate(t *testing.T) {
	t.Parallel()
	e := openObjects(t)
	ctx := t.Context()
	hour := Duration(time.Hour)
	s, err := e.CreateSchedule(ctx, &Schedule{Name: "s", Timing: Timing{Frequency: "daily", Time: "03:00"},
		Batch: Batch{Operations: []OperationSpec{{Type: OpCleanup, OlderThan: &hour}}}})
	require.NoError(t, err)
	const n = 20
	var mu sync.Mutex
	won := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 2 * n {
		wg.Go(func() {
			<-start
			op, name := e.PauseSchedule, SchedulePaused
			if i%2 == 1 {
				op, name = e.ResumeSchedule, ScheduleActive
			}
			_, err := op(ctx, s.ID)
			if err != nil {
				assert.Equal(t, CodeInvalidState, CodeOf(err), "%v", err)
				return
			}
			mu.Lock()
			won[name]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	got, err := e.Schedule(ctx, s.ID)
	require.NoError(t, err)
	paused, resumed := won[SchedulePaused], won[ScheduleActive]
	require.Positive(t, paused)
	if got.Status == SchedulePaused {
		require.Equal(t, resumed+1, paused, "from active, the successful changes alternate and end paused")
		require.Nil(t, got.NextRunAt)
	} else {
		require.Equal(t, resumed, paused, "from active, the successful changes alternate and end active")
		require.NotNil(t, got.NextRunAt)
	}
}

// An update racing a delete never brings the deleted object back.
func TestObjects_UpdateNeverResurrects(t *testing.T) {
	t.Parallel()
	e := openObjects(t)
	ctx := t.Context()
	for range 10 {
		hook, err := e.CreateWebhook(ctx, &Webhook{URL: "http://127.0.0.1:1/hook"})
		require.NoError(t, err)
		var wg sync.WaitGroup
		var delErr error
		wg.Go(func() { delErr = e.DeleteWebhook(ctx, hook.ID) })
		wg.Go(func() {
			_, err := e.UpdateWebhook(ctx, hook.ID, &Webhook{URL: "http://127.0.0.1:2/hook"})
			if err != nil {
				assert.ErrorIs(t, err, ErrNotFound, "an update racing the delete fails only as not found")
			}
		})
		wg.Wait()
		require.NoError(t, delErr)
		_, err = e.Webhook(ctx, hook.ID)
		require.ErrorIs(t, err, ErrNotFound, "a deleted webhook stays deleted")
	}
}

// The store's answers: ids by kind, NOT_FOUND naming the kind, the owner
// filter of a list, pages and their cursors.
func TestObjects_GetListDelete(t *testing.T) {
	t.Parallel()
	e := openObjects(t)
	a, b := WithPrincipal(t.Context(), "a"), WithPrincipal(t.Context(), "b")
	var ids []string
	for i, ctx := range []context.Context{a, b, a, a} {
		tpl, err := e.CreateTemplate(ctx, testTemplate("t"+string(rune('0'+i))))
		require.NoError(t, err)
		require.Equal(t, "template"+string(rune('1'+i)), tpl.ID)
		ids = append(ids, tpl.ID)
	}
	_, err := e.Template(a, "template99")
	require.EqualError(t, err, "NOT_FOUND: template not found: template99")
	_, err = e.Template(a, "schedule1")
	require.ErrorIs(t, err, ErrNotFound, "another kind's id")

	first, err := e.Templates(a, &ListOptions{Owner: "a", Limit: 2})
	require.NoError(t, err)
	require.Len(t, first.Items, 2)
	require.Equal(t, []string{ids[0], ids[2]}, []string{first.Items[0].ID, first.Items[1].ID}, "only a's, oldest first")
	require.NotEmpty(t, first.NextCursor)
	rest, err := e.Templates(a, &ListOptions{Owner: "a", Limit: 2, Cursor: first.NextCursor})
	require.NoError(t, err)
	require.Len(t, rest.Items, 1)
	require.Equal(t, ids[3], rest.Items[0].ID)
	require.Empty(t, rest.NextCursor)
	all, err := e.Templates(t.Context(), nil)
	require.NoError(t, err)
	require.Len(t, all.Items, 4, "no owner: all of them")
	_, err = e.Templates(a, &ListOptions{Cursor: "webhook1"})
	require.Equal(t, CodeInvalidBatch, CodeOf(err), "a cursor of another kind")

	require.NoError(t, e.DeleteTemplate(a, ids[0]))
	require.ErrorIs(t, e.DeleteTemplate(a, ids[0]), ErrNotFound, "deleted once")
	_, err = e.UpdateTemplate(a, ids[0], testTemplate("x"))
	require.ErrorIs(t, err, ErrNotFound)
	_, err = e.UpdateTemplate(a, ids[0], nil)
	require.ErrorIs(t, err, ErrNotFound, "an unknown id wins over a bad template")
	_, err = e.UpdateTemplate(a, ids[2], nil)
	require.Equal(t, CodeInvalidBatch, CodeOf(err), "a nil template")
}

// A page marshals as the API document's list object and reads back.
func TestPage_JSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(&TemplatePage{})
	require.NoError(t, err)
	require.JSONEq(t, `{"templates": []}`, string(b))
	b, err = json.Marshal(DeliveryPage{Items: []*Delivery{{ID: "d1", Payload: json.RawMessage(`{"a":"<b>"}`)}}, NextCursor: "7"})
	require.NoError(t, err)
	require.Equal(t, `{"deliveries":[{"id":"d1","webhook_id":"","event":"","payload":{"a":"\u003cb\u003e"},"status":"","attempts":0,"created_at":"0001-01-01T00:00:00Z"}],"next_cursor":"7"}`, string(b))
	var back DeliveryPage
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, "7", back.NextCursor)
	require.Len(t, back.Items, 1)
	require.Equal(t, "d1", back.Items[0].ID)
	var sp SchedulePage
	require.NoError(t, json.Unmarshal([]byte(`{"schedules": [{"id": "schedule3"}]}`), &sp))
	require.Equal(t, "schedule3", sp.Items[0].ID)
	require.Empty(t, sp.NextCursor)
	require.Error(t, json.Unmarshal([]byte(`[]`), &sp))
}

// viewPage reads a bucket keyed by sequence numbers a page at a time; the
// cursor is the number of the next key; bad input and bad values are
// errors.
func TestViewPage(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore()
	require.NoError(t, s.Update(func(tx Tx) error {
		for i := uint64(1); i <= 5; i++ {
			if err := putObject(tx, "b", i, AuditEvent{Type: EventType("e" + strconv.FormatUint(i, 10))}); err != nil {
				return err
			}
		}
		return nil
	}))
	var got []EventType
	opts := &PageOptions{Limit: 2}
	for {
		page, err := viewPage[AuditEvent](s, "b", opts)
		require.NoError(t, err)
		for _, ev := range page.Items {
			got = append(got, ev.Type)
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	require.Equal(t, []EventType{"e1", "e2", "e3", "e4", "e5"}, got)
	_, err := viewPage[AuditEvent](s, "b", &PageOptions{Cursor: "x"})
	require.Equal(t, CodeInvalidBatch, CodeOf(err))
	empty, err := viewPage[AuditEvent](s, "none", nil)
	require.NoError(t, err)
	require.NotNil(t, empty.Items, "an empty page lists nothing, not null")
	require.NoError(t, s.Update(func(tx Tx) error { return tx.Put("b", u64key(3), []byte("{")) }))
	_, err = viewPage[AuditEvent](s, "b", nil)
	require.Error(t, err, "a value that does not decode")
}

// Every page type marshals its items under the API document's name.
func TestPage_Names(t *testing.T) {
	t.Parallel()
	for want, v := range map[string]any{"jobs": JobPage{}, "errors": ErrorPage{}, "events": EventPage{}, "templates": TemplatePage{},
		"schedules": SchedulePage{}, "webhooks": WebhookPage{}, "deliveries": DeliveryPage{}} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.Equal(t, `{"`+want+`":[]}`, string(b))
	}
}
