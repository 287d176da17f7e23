package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/adhocore/gronx"
)

// Schedule submits a batch at the times its Timing gives, as in the API
// document's "Batch Scheduling". Each due time starts at most one job, even
// across restarts; the job carries the schedule's id.
type Schedule struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Batch is what each run submits: operations, or a template_id and
	// parameters.
	Batch        Batch         `json:"batch"`
	Timing       Timing        `json:"timing"`
	Notification *Notification `json:"notification,omitempty"`
	// CatchUp says what happens to missed runs. A run is missed when the
	// scheduler gets to it more than a minute after its due time (the
	// engine was closed or the process down), or when a later run of the
	// same schedule is also already due. skip (the default) drops every
	// missed run and logs how many; run_once submits one job, for the
	// latest missed due time. Either way next_run_at moves past now. A run
	// that is at most a minute late is not missed: it runs.
	CatchUp string `json:"catch_up,omitempty"`
	// Overlap says what happens when a run falls due while the previous
	// run's job is still unfinished: skip (the default) or allow.
	Overlap string `json:"overlap,omitempty"`
	// Status is active or paused.
	Status    string     `json:"status"`
	NextRunAt *time.Time `json:"next_run_at,omitempty"`
	LastRunAt *time.Time `json:"last_run_at,omitempty"`
	LastJobID string     `json:"last_job_id,omitempty"`
	// NotificationSecret ("whsec_" + base64) signs the schedule's
	// notification webhooks the way webhook deliveries are signed; it is
	// generated with the first one.
	NotificationSecret string `json:"notification_secret,omitempty"`
	Owner              string `json:"owner,omitempty"`
	// RunsAsAdmin is set by the engine, never taken from input: whether the
	// schedule was last saved by an administrator, whose runs may then use
	// the administrator-only operations.
	RunsAsAdmin bool      `json:"runs_as_admin,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Timing says when a schedule runs: a frequency with a time of day in a
// time zone, or a cron expression; all evaluated on the zone's wall clock.
// Across DST changes a time that the spring jump skips runs right after
// the jump, and a time the autumn change repeats runs once.
type Timing struct {
	// Frequency is once (at At), hourly (at the minute of Time), daily,
	// weekly (on DaysOfWeek) or monthly (on DayOfMonth), at Time.
	Frequency string `json:"frequency,omitempty"`
	// Time is the wall-clock time of day, "HH:MM". Default "00:00".
	Time string `json:"time,omitempty"`
	// Timezone is an IANA zone name. Default UTC.
	Timezone string `json:"timezone,omitempty"`
	// DaysOfWeek are weekday names (mon ... sun) for weekly schedules.
	DaysOfWeek []string `json:"days_of_week,omitempty"`
	// DayOfMonth is 1 to 31 for monthly schedules (months without that day
	// are skipped). Default 1.
	DayOfMonth int `json:"day_of_month,omitempty"`
	// At is the one time of a once schedule: RFC 3339, or a local
	// "2006-01-02T15:04" in Timezone.
	At string `json:"at,omitempty"`
	// Cron is a cron expression (5 fields, or 6 with seconds first),
	// instead of Frequency.
	Cron string `json:"cron,omitempty"`
}

// Notification says whom to tell when a schedule's job ends.
type Notification struct {
	OnCompletion *NotifyTarget `json:"on_completion,omitempty"`
	OnFailure    *NotifyTarget `json:"on_failure,omitempty"`
}

// NotifyTarget is a list of e-mail addresses and/or a webhook URL.
type NotifyTarget struct {
	Email    []string `json:"email,omitempty"`
	Webhook  string   `json:"webhook,omitempty"`
	Severity string   `json:"severity,omitempty"`
}

// Schedule states and policies.
const (
	ScheduleActive = "active"
	SchedulePaused = "paused"
	CatchUpSkip    = "skip"
	CatchUpRunOnce = "run_once"
	OverlapSkip    = "skip"
	OverlapAllow   = "allow"
)

// Schedule change events, for the audit log.
const (
	EventScheduleCreated EventType = "schedule_created"
	EventScheduleUpdated EventType = "schedule_updated"
	EventScheduleDeleted EventType = "schedule_deleted"
	EventSchedulePaused  EventType = "schedule_paused"
	EventScheduleResumed EventType = "schedule_resumed"
)

const (
	bucketSchedules  = "schedules"
	scheduleIDPrefix = "schedule"
)

// DecodeSchedule reads a schedule object (the value of the request body's
// "schedule" field) strictly.
func DecodeSchedule(data []byte) (*Schedule, error) { return decodeObject[Schedule](data) }

// plan is a compiled Timing.
type timingPlan struct {
	loc  *time.Location
	cron string    // empty for once
	at   time.Time // once
}

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// locations caches time.LoadLocation by zone name: loading reads the zone
// database from disk, and writeSchedule compiles timings inside the
// group-commit transaction (again on every retry). A *time.Location is
// immutable and safe to share. Only zones that load are kept, so the
// cache holds at most the zone database's names.
var locations sync.Map // string -> *time.Location

// loadLocation is time.LoadLocation, cached.
func loadLocation(name string) (*time.Location, error) {
	if loc, ok := locations.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, loc)
	return loc, nil
}

// compileTiming checks a Timing and turns it into a cron on wall-clock
// time. Problems are details under "timing".
func compileTiming(t Timing) (*timingPlan, error) {
	var d details
	p := &timingPlan{loc: time.UTC}
	if t.Timezone != "" {
		loc, err := loadLocation(t.Timezone)
		if err != nil || strings.EqualFold(t.Timezone, "local") {
			d.add("timing.timezone", DetailInvalidValue, "unknown time zone %q: use an IANA name such as Asia/Tokyo", t.Timezone)
		} else {
			p.loc = loc
		}
	}
	hour, minute := 0, 0
	if t.Time != "" {
		tt, err := time.Parse("15:04", t.Time)
		if err != nil {
			d.add("timing.time", DetailInvalidValue, "time must be HH:MM (00:00 to 23:59), got %q", t.Time)
		} else {
			hour, minute = tt.Hour(), tt.Minute()
		}
	}
	if t.Cron != "" && t.Frequency != "" {
		d.add("timing.cron", DetailInvalidValue, "give either a frequency or a cron expression, not both")
	}
	if t.Frequency != "weekly" && len(t.DaysOfWeek) > 0 {
		d.add("timing.days_of_week", DetailInvalidValue, "days_of_week applies to weekly schedules")
	}
	if t.Frequency != "monthly" && t.DayOfMonth != 0 {
		d.add("timing.day_of_month", DetailInvalidValue, "day_of_month applies to monthly schedules")
	}
	if t.Frequency != "once" && t.At != "" {
		d.add("timing.at", DetailInvalidValue, "at applies to once schedules")
	}
	switch t.Frequency {
	case "":
		if t.Cron == "" {
			d.add("timing.frequency", DetailRequired, "timing needs a frequency (once, hourly, daily, weekly, monthly) or a cron expression")
		}
		p.cron = t.Cron
	case "once":
		switch {
		case t.At == "":
			d.add("timing.at", DetailRequired, "a once schedule needs at")
		default:
			if at, err := time.Parse(time.RFC3339, t.At); err == nil {
				p.at = at
			} else if at, err := time.ParseInLocation("2006-01-02T15:04", t.At, p.loc); err == nil {
				p.at = at
			} else {
				d.add("timing.at", DetailInvalidValue, "at must be RFC 3339 or 2006-01-02T15:04, got %q", t.At)
			}
		}
	case "hourly":
		p.cron = fmt.Sprintf("%d * * * *", minute)
	case "daily":
		p.cron = fmt.Sprintf("%d %d * * *", minute, hour)
	case "weekly":
		if len(t.DaysOfWeek) == 0 {
			d.add("timing.days_of_week", DetailRequired, "a weekly schedule needs days_of_week")
		}
		var days []string
		for i, name := range t.DaysOfWeek {
			n := slices.Index(weekdays, strings.ToLower(name[:min(3, len(name))]))
			if n < 0 || (len(name) > 3 && !strings.HasPrefix(strings.ToLower(time.Weekday(n).String()), strings.ToLower(name))) {
				d.add(fmt.Sprintf("timing.days_of_week[%d]", i), DetailInvalidValue, "unknown weekday %q", name)
				continue
			}
			days = append(days, strconv.Itoa(n))
		}
		p.cron = fmt.Sprintf("%d %d * * %s", minute, hour, strings.Join(days, ","))
	case "monthly":
		day := t.DayOfMonth
		if day == 0 {
			day = 1
		}
		if day < 1 || day > 31 {
			d.add("timing.day_of_month", DetailInvalidValue, "day_of_month must be 1 to 31, got %d", t.DayOfMonth)
		}
		p.cron = fmt.Sprintf("%d %d %d * *", minute, hour, day)
	default:
		d.add("timing.frequency", DetailInvalidValue, "unknown frequency %q: use once, hourly, daily, weekly or monthly", t.Frequency)
	}
	if p.cron != "" && len(d.list) == 0 {
		if !gronx.IsValid(p.cron) {
			d.add("timing.cron", DetailInvalidValue, "invalid cron expression %q", p.cron)
		} else if _, err := gronx.NextTickAfter(p.cron, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), false); err != nil {
			d.add("timing.cron", DetailInvalidValue, "cron expression %q never fires", p.cron)
		}
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	return p, nil
}

// wall is a wall-clock time of the zone written as a UTC time, so that
// cron arithmetic on it knows nothing of DST.
func wall(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
}

// instant maps a wall-clock time of the zone to the moment it happens: the
// first of two in the repeated autumn hour, and the end of the gap (the
// moment right after the jump) for a time the spring jump skips.
func instant(w time.Time, loc *time.Location) time.Time {
	t := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, loc)
	if wall(t, loc).Equal(w) {
		// Repeated hour: prefer the earlier moment with the same wall time.
		for _, back := range []time.Duration{time.Hour, 30 * time.Minute} {
			if e := t.Add(-back); wall(e, loc).Equal(w) {
				return e
			}
		}
		return t
	}
	// In a gap: find the first moment at or after the wanted wall time,
	// which is the transition itself. time.Date may have landed on either
	// side of it.
	for i := 0; i < 24*60 && wall(t, loc).Before(w); i++ {
		t = t.Add(time.Minute)
	}
	for range 24 * 60 {
		p := t.Add(-time.Minute)
		if wall(p, loc).Before(w) {
			break
		}
		t = p
	}
	return t.Truncate(time.Minute)
}

// next returns the first run strictly after the moment after, or zero
// when there is none.
func (p *timingPlan) next(after time.Time) (time.Time, error) {
	if p.cron == "" {
		if p.at.After(after) {
			return p.at.UTC(), nil
		}
		return time.Time{}, nil
	}
	w := wall(after, p.loc)
	for range 1000 {
		nw, err := gronx.NextTickAfter(p.cron, w, false)
		if err != nil {
			return time.Time{}, err
		}
		if t := instant(nw, p.loc); t.After(after) {
			return t.UTC(), nil
		}
		w = nw
	}
	return time.Time{}, fmt.Errorf("no run after %s", after)
}

// PreviewTiming returns the next n run times of t after from (at most 100).
// A bad timing returns an INVALID_BATCH *Error.
func PreviewTiming(t Timing, from time.Time, n int) ([]time.Time, error) {
	p, err := compileTiming(t)
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for len(out) < min(n, 100) {
		next, err := p.next(from)
		if err != nil || next.IsZero() {
			return out, err
		}
		out = append(out, next)
		from = next
	}
	return out, nil
}

// checkSchedule validates a schedule: its timing, policies and batch (the
// batch is checked as Submit would, without running it).
func (e *Engine) checkSchedule(ctx context.Context, s *Schedule) error {
	var d details
	if strings.TrimSpace(s.Name) == "" {
		d.add("name", DetailRequired, "a schedule needs a name")
	}
	if _, err := compileTiming(s.Timing); err != nil {
		d.merge("", err)
	}
	if !slices.Contains([]string{"", CatchUpSkip, CatchUpRunOnce}, s.CatchUp) {
		d.add("catch_up", DetailInvalidValue, "catch_up is skip or run_once")
	}
	if !slices.Contains([]string{"", OverlapSkip, OverlapAllow}, s.Overlap) {
		d.add("overlap", DetailInvalidValue, "overlap is skip or allow")
	}
	if n := s.Notification; n != nil {
		for name, tgt := range map[string]*NotifyTarget{"on_completion": n.OnCompletion, "on_failure": n.OnFailure} {
			if tgt == nil {
				continue
			}
			if len(tgt.Email) > 0 && e.opts.Mailer == nil {
				d.add("notification."+name+".email", DetailInvalidValue, "e-mail notifications need a mail server, and none is configured (Options.Mailer; the example server's -smtp-addr)")
			}
			for i, addr := range tgt.Email {
				if !strings.Contains(addr, "@") || strings.ContainsAny(addr, " \r\n<>") {
					d.add(fmt.Sprintf("notification.%s.email[%d]", name, i), DetailInvalidValue, "invalid e-mail address %q", addr)
				}
			}
			if tgt.Webhook != "" {
				if err := e.checkWebhookURL(ctx, tgt.Webhook); err != nil {
					d.add("notification."+name+".webhook", DetailInvalidValue, "%v", err)
				}
			}
		}
	}
	if err := e.Validate(ctx, &s.Batch); err != nil {
		var be *Error
		if errors.As(err, &be) && be.Code == CodeInvalidBatch {
			for _, x := range be.Details {
				x.Field = joinPath("batch", x.Field)
				d.list = append(d.list, x)
			}
		} else {
			return err
		}
	}
	sortDetails(d.list)
	return invalidBatch(d.list)
}

// sortDetails orders details by field, for stable answers.
func sortDetails(list []Detail) {
	slices.SortStableFunc(list, func(a, b Detail) int { return strings.Compare(a.Field, b.Field) })
}

// conflictKey is what two schedules clash on: the same work, that is the
// same template with the same parameters, or the same operations with the
// same payloads (type, resource, filter, where, update, ...). Description
// and options do not make work different. Map keys marshal sorted, so the
// key is canonical.
func conflictKey(b *Batch) string {
	key, err := json.Marshal(struct {
		TemplateID string          `json:"t,omitempty"`
		Parameters map[string]any  `json:"p,omitempty"`
		Operations []OperationSpec `json:"o,omitempty"`
	}{b.TemplateID, b.Parameters, b.Operations})
	if err != nil {
		return "unmarshalable:" + b.TemplateID // stored schedules are valid JSON
	}
	return string(key)
}

// conflict returns the active schedule of the same owner (other than s)
// that would fire the same work at the same moment as s's next run, if
// any. Other principals' schedules never clash: a conflict would name them.
func conflictWith(tx Tx, s *Schedule) (*Schedule, error) {
	if s.Status != ScheduleActive || s.NextRunAt == nil {
		return nil, nil
	}
	key := conflictKey(&s.Batch)
	var clash *Schedule
	var derr error
	err := tx.Scan(bucketSchedules, nil, func(_, v []byte) bool {
		var o Schedule
		if derr = json.Unmarshal(v, &o); derr != nil {
			return false
		}
		if o.ID != s.ID && o.Owner == s.Owner && o.Status == ScheduleActive && o.NextRunAt != nil && o.NextRunAt.Equal(*s.NextRunAt) && conflictKey(&o.Batch) == key {
			clash = &o
			return false
		}
		return true
	})
	return clash, firstErr(err, derr)
}

// scheduleConflict is the document's 409.
func scheduleConflict(at time.Time, with string) *Error {
	return &Error{Code: CodeScheduleConflict, Message: "Schedule conflict detected", Details: []Detail{{
		Time: at.UTC().Format(time.RFC3339), ConflictWith: with,
	}}}
}

// scheduleStore is the store of schedules.
func (e *Engine) scheduleStore() objects[Schedule, *Schedule] {
	return objects[Schedule, *Schedule]{e: e, bucket: bucketSchedules, kind: scheduleIDPrefix,
		created: EventScheduleCreated, deleted: EventScheduleDeleted,
		check: e.checkSchedule,
		write: e.writeSchedule,
		// Its notification deliveries go with it; their outbox entries
		// are dropped when they fall due.
		remove: func(w *wtx, id string) error { return w.DeleteBucket(deliveriesBucket(id)) },
	}
}

// writeSchedule completes a schedule about to be stored: an active one
// gets its next run, and must not clash with another; the scheduler
// looks again once it is stored.
func (e *Engine) writeSchedule(w *wtx, s *Schedule) error {
	if s.Status == ScheduleActive {
		p, err := compileTiming(s.Timing)
		if err != nil {
			return err
		}
		next, err := p.next(e.now())
		if err != nil {
			return err
		}
		s.NextRunAt = nil
		if !next.IsZero() {
			s.NextRunAt = &next
		}
	}
	clash, err := conflictWith(w.Tx, s)
	if err != nil {
		return err
	}
	if clash != nil {
		return scheduleConflict(*s.NextRunAt, clash.ID)
	}
	w.after = append(w.after, func() { signal(e.schedulerWake) })
	return nil
}

// CreateSchedule checks s and stores it as an active schedule owned by the
// context's principal, answering with its id and next_run_at. A bad
// schedule is an INVALID_BATCH *Error (nothing stored); one that would fire
// the same work as another active schedule at the same moment is a
// SCHEDULE_CONFLICT *Error naming the time and the other schedule.
func (e *Engine) CreateSchedule(ctx context.Context, s *Schedule) (*Schedule, error) {
	return e.scheduleStore().create(ctx, s, func(ns *Schedule) error {
		ns.Status = ScheduleActive
		ns.RunsAsAdmin = markedAdmin(ctx) && PrincipalFrom(ctx) != ""
		ns.LastRunAt, ns.LastJobID, ns.NotificationSecret = nil, "", ""
		return nil
	})
}

// Schedule returns the schedule with id, or an error matching
// [ErrNotFound].
func (e *Engine) Schedule(ctx context.Context, id string) (*Schedule, error) {
	return e.scheduleStore().get(id)
}

// Schedules lists schedules, filtered by opts.Owner and paged.
func (e *Engine) Schedules(ctx context.Context, opts *ListOptions) (*SchedulePage, error) {
	return e.scheduleStore().list(opts)
}

// UpdateSchedule replaces schedule id's name, batch, timing, notification
// and policies, checked as on create; its state and history stay.
func (e *Engine) UpdateSchedule(ctx context.Context, id string, s *Schedule) (*Schedule, error) {
	admin := markedAdmin(ctx)
	return e.scheduleStore().replace(ctx, id, EventScheduleUpdated, s, func(old, ns *Schedule) {
		ns.Status, ns.LastRunAt, ns.LastJobID, ns.NextRunAt = old.Status, old.LastRunAt, old.LastJobID, old.NextRunAt
		ns.NotificationSecret = old.NotificationSecret
		ns.RunsAsAdmin = admin && old.Owner != ""
	})
}

// PauseSchedule stops a schedule from firing; ResumeSchedule starts it
// again from the next due time after now.
func (e *Engine) PauseSchedule(ctx context.Context, id string) (*Schedule, error) {
	return e.setScheduleStatus(ctx, id, SchedulePaused, EventSchedulePaused)
}

// ResumeSchedule makes a paused schedule active again; missed runs are not
// made up. It can conflict like CreateSchedule.
func (e *Engine) ResumeSchedule(ctx context.Context, id string) (*Schedule, error) {
	return e.setScheduleStatus(ctx, id, ScheduleActive, EventScheduleResumed)
}

func (e *Engine) setScheduleStatus(ctx context.Context, id, status string, ev EventType) (*Schedule, error) {
	return e.scheduleStore().update(ctx, id, ev, func(_ *wtx, _, s *Schedule) error {
		if s.Status == status {
			return &Error{Code: CodeInvalidState, Message: fmt.Sprintf("schedule %s is already %s", id, status)}
		}
		// Resuming compiles the timing in writeSchedule. Pausing does
		// not reach that, so a stored timing that no longer compiles
		// (its zone gone from the zone database) is refused here.
		if status == SchedulePaused {
			if _, err := compileTiming(s.Timing); err != nil {
				return err
			}
		}
		s.Status = status
		if status == SchedulePaused {
			s.NextRunAt = nil
		}
		return nil
	})
}

// DeleteSchedule removes a schedule; jobs it started stay.
func (e *Engine) DeleteSchedule(ctx context.Context, id string) error {
	return e.scheduleStore().delete(ctx, id)
}
