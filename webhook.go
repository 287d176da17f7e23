package batch

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Webhook is an endpoint that receives the engine's events as the API
// document's batch_event payloads, registered with [Engine.CreateWebhook].
// Deliveries are stored before they are sent, signed the Standard Webhooks
// way (webhook-id, webhook-timestamp and webhook-signature "v1,<base64
// HMAC-SHA256 of id.timestamp.body>" keyed with the decoded Secret),
// retried with exponential backoff on a non-2xx answer or a timeout, and
// survive a restart. Each webhook only receives events of its owner's
// jobs.
type Webhook struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Events are the event types delivered: job_created, job_started, ...,
	// schedule_fired, or batch_event (every job event, as the API document
	// names the payload). Empty means every job event and schedule_fired.
	Events      []EventType `json:"events,omitempty"`
	Description string      `json:"description,omitempty"`
	// Secret ("whsec_" + base64) signs deliveries; generated on create.
	Secret    string    `json:"secret"`
	Owner     string    `json:"owner,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// WebhookEvents are the event types a webhook can subscribe to.
func WebhookEvents() []EventType {
	return append(jobWebhookEvents(), EventScheduleFired, EventBatchEvent)
}

// jobWebhookEvents are the job events [EventBatchEvent] stands for.
func jobWebhookEvents() []EventType {
	return []EventType{EventJobCreated, EventJobStarted, EventJobPaused, EventJobResumed, EventJobCompleted,
		EventJobFailed, EventJobCancelled}
}

// EventBatchEvent, in a webhook's Events, subscribes it to every job event
// (the API document's "batch_event").
const EventBatchEvent EventType = "batch_event"

// wants reports whether the webhook subscribes to events of type t.
func (w *Webhook) wants(t EventType) bool {
	return len(w.Events) == 0 || slices.Contains(w.Events, t) ||
		(slices.Contains(w.Events, EventBatchEvent) && slices.Contains(jobWebhookEvents(), t))
}

// EventScheduleFired is reported when a schedule starts a job.
const EventScheduleFired EventType = "schedule_fired"

// Webhook change events, for the audit log.
const (
	EventWebhookCreated EventType = "webhook_created"
	EventWebhookUpdated EventType = "webhook_updated"
	EventWebhookDeleted EventType = "webhook_deleted"
)

// Delivery is one event on its way to one webhook.
type Delivery struct {
	ID        string          `json:"id"`
	WebhookID string          `json:"webhook_id"`
	Event     EventType       `json:"event"`
	JobID     string          `json:"job_id,omitempty"`
	Payload   json.RawMessage `json:"payload"`
	// Status is pending (waiting for its next try), delivered or failed
	// (out of tries).
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastStatusCode int        `json:"last_status_code,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	SettledAt      *time.Time `json:"settled_at,omitempty"`
	// URL and Severity are set on a schedule's notification deliveries
	// (WebhookID is then the schedule's id): where it goes and its
	// X-Severity header.
	URL      string `json:"url,omitempty"`
	Severity string `json:"severity,omitempty"`
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Webhook delivery defaults.
const (
	DefaultWebhookRetryDelay = 5 * time.Second
	DefaultWebhookAttempts   = 8
	DefaultWebhookTimeout    = 10 * time.Second
	webhookMaxDelay          = time.Hour
	webhookInFlightPerHook   = 4
)

const (
	bucketWebhooks  = "webhooks"
	bucketOutbox    = "outbox"
	webhookIDPrefix = "webhook"
)

func deliveriesBucket(webhookID string) string { return "deliveries/" + webhookID }

// DecodeWebhook reads a webhook object (the value of the request body's
// "webhook" field) strictly.
func DecodeWebhook(data []byte) (*Webhook, error) {
	if err := CheckJSON(data); err != nil {
		return nil, err
	}
	var w Webhook
	if err := decodeStrict(data, &w); err != nil {
		var d details
		d.add(jsonErrorField("", err, data, reflect.TypeFor[Webhook]()), DetailInvalidValue, "%s", jsonErrorMessage(err))
		return nil, invalidBatch(d.list)
	}
	return &w, nil
}

// checkWebhook validates a webhook's URL and events.
func (e *Engine) checkWebhook(ctx context.Context, w *Webhook) error {
	var d details
	if err := e.checkWebhookURL(ctx, w.URL); err != nil {
		d.add("url", DetailInvalidValue, "%v", err)
	}
	for i, ev := range w.Events {
		if !slices.Contains(WebhookEvents(), ev) {
			d.add(fmt.Sprintf("events[%d]", i), DetailInvalidValue, "unknown event %q", ev)
		}
	}
	if w.Secret != "" {
		d.add("secret", DetailInvalidValue, "the secret is generated by the server")
	}
	return invalidBatch(d.list)
}

// checkWebhookURL refuses URLs that are not http(s) or that point at
// loopback, private or link-local addresses (unless allowed). Names that
// do not resolve now are accepted: delivery checks every address it
// connects to.
func (e *Engine) checkWebhookURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url must be an absolute http or https URL")
	}
	if e.opts.AllowPrivateWebhooks {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if privateAddr(ip) {
			return fmt.Errorf("url points at a private or loopback address %s", ip)
		}
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, ip := range addrs {
		if privateAddr(ip) {
			return fmt.Errorf("url host %s resolves to a private or loopback address %s", host, ip)
		}
	}
	return nil
}

// privateAddr reports addresses a webhook must not reach by default.
func privateAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(ip) // carrier-grade NAT
}

// newSecret makes a "whsec_" signing secret.
func newSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}

// Sign returns the Standard Webhooks signature header value of a delivery:
// "v1," and the base64 HMAC-SHA256 of "id.timestamp.body", keyed with the
// base64-decoded part of a "whsec_" secret.
func Sign(secret, id string, timestamp int64, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("batch: bad webhook secret: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, timestamp)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// CreateWebhook registers a webhook owned by the context's principal and
// returns it with its generated id and secret. A bad URL or event is an
// INVALID_BATCH *Error.
func (e *Engine) CreateWebhook(ctx context.Context, w *Webhook) (*Webhook, error) {
	if w == nil {
		return nil, invalidBatch([]Detail{{Field: "webhook", Code: DetailRequired, Message: "a webhook is required"}})
	}
	nw := *w
	if err := e.checkWebhook(ctx, &nw); err != nil {
		return nil, err
	}
	secret, err := newSecret()
	if err != nil {
		return nil, err
	}
	now := e.now().UTC()
	nw.Secret, nw.Owner, nw.CreatedAt, nw.UpdatedAt = secret, PrincipalFrom(ctx), now, now
	err = e.update(func(w *wtx) error {
		seq, err := w.NextSequence(bucketWebhooks)
		if err != nil {
			return err
		}
		nw.ID = webhookIDPrefix + strconv.FormatUint(seq, 10)
		if err := putObject(w.Tx, bucketWebhooks, seq, &nw); err != nil {
			return err
		}
		return w.event(Event{Type: EventWebhookCreated, Principal: nw.Owner, ObjectID: nw.ID})
	})
	if err != nil {
		return nil, err
	}
	return &nw, nil
}

// Webhook returns the webhook with id, or an error matching [ErrNotFound].
func (e *Engine) Webhook(ctx context.Context, id string) (*Webhook, error) {
	seq, ok := parseObjectID(id, webhookIDPrefix)
	if !ok {
		return nil, notFound("webhook", id)
	}
	var w Webhook
	if err := e.store.View(func(tx Tx) error { return getObject(tx, bucketWebhooks, seq, "webhook", id, &w) }); err != nil {
		return nil, err
	}
	return &w, nil
}

// WebhookPage is one page of webhooks, oldest first.
type WebhookPage struct {
	Webhooks   []*Webhook `json:"webhooks"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// Webhooks lists webhooks, filtered by opts.Owner and paged.
func (e *Engine) Webhooks(ctx context.Context, opts *ListOptions) (*WebhookPage, error) {
	page := &WebhookPage{Webhooks: []*Webhook{}}
	next, err := listObjects(e.store, bucketWebhooks, webhookIDPrefix, opts, func(v []byte) (string, bool, error) {
		var w Webhook
		if err := json.Unmarshal(v, &w); err != nil {
			return "", false, err
		}
		if opts != nil && opts.Owner != "" && w.Owner != opts.Owner {
			return "", false, nil
		}
		page.Webhooks = append(page.Webhooks, &w)
		return w.ID, true, nil
	})
	page.NextCursor = next
	return page, err
}

// UpdateWebhook changes a webhook's URL, events and description; its id,
// secret and owner stay.
func (e *Engine) UpdateWebhook(ctx context.Context, id string, w *Webhook) (*Webhook, error) {
	old, err := e.Webhook(ctx, id)
	if err != nil {
		return nil, err
	}
	if w == nil {
		return nil, invalidBatch([]Detail{{Field: "webhook", Code: DetailRequired, Message: "a webhook is required"}})
	}
	nw := *w
	if err := e.checkWebhook(ctx, &nw); err != nil {
		return nil, err
	}
	nw.ID, nw.Secret, nw.Owner, nw.CreatedAt, nw.UpdatedAt = old.ID, old.Secret, old.Owner, old.CreatedAt, e.now().UTC()
	seq, _ := parseObjectID(id, webhookIDPrefix)
	err = e.update(func(w *wtx) error {
		if err := putObject(w.Tx, bucketWebhooks, seq, &nw); err != nil {
			return err
		}
		return w.event(Event{Type: EventWebhookUpdated, Principal: PrincipalFrom(ctx), ObjectID: id})
	})
	if err != nil {
		return nil, err
	}
	return &nw, nil
}

// DeleteWebhook removes a webhook and its deliveries, pending ones
// included.
func (e *Engine) DeleteWebhook(ctx context.Context, id string) error {
	seq, ok := parseObjectID(id, webhookIDPrefix)
	if !ok {
		return notFound("webhook", id)
	}
	err := e.update(func(tx *wtx) error {
		if tx.Get(bucketWebhooks, u64key(seq)) == nil {
			return notFound("webhook", id)
		}
		var keys [][]byte
		if err := tx.Scan(bucketOutbox, nil, func(k, v []byte) bool {
			if string(v) == id {
				keys = append(keys, bytes.Clone(k))
			}
			return true
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(bucketOutbox, k); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(deliveriesBucket(id)); err != nil {
			return err
		}
		if err := tx.Delete(bucketWebhooks, u64key(seq)); err != nil {
			return err
		}
		return tx.event(Event{Type: EventWebhookDeleted, Principal: PrincipalFrom(ctx), ObjectID: id})
	})
	if err != nil {
		return err
	}
	return nil
}

// DeliveryPage is one page of a webhook's deliveries, oldest first.
type DeliveryPage struct {
	Deliveries []*Delivery `json:"deliveries"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// WebhookDeliveries pages through the deliveries of webhook id with their
// last status. An unknown webhook returns an error matching [ErrNotFound].
func (e *Engine) WebhookDeliveries(ctx context.Context, id string, opts *PageOptions) (*DeliveryPage, error) {
	if _, err := e.Webhook(ctx, id); err != nil {
		return nil, err
	}
	limit, from, err := pageKeys(opts)
	if err != nil {
		return nil, err
	}
	page := &DeliveryPage{Deliveries: []*Delivery{}}
	err = e.store.View(func(tx Tx) error {
		var derr error
		err := tx.Scan(deliveriesBucket(id), from, func(k, v []byte) bool {
			if len(page.Deliveries) == limit {
				page.NextCursor = strconv.FormatUint(beUint64(k), 10)
				return false
			}
			var d Delivery
			if derr = json.Unmarshal(v, &d); derr != nil {
				return false
			}
			page.Deliveries = append(page.Deliveries, &d)
			return true
		})
		return firstErr(err, derr)
	})
	return page, err
}

// batchEvent is the document's webhook payload.
type batchEvent struct {
	Type      string         `json:"type"`
	Timestamp string         `json:"timestamp"`
	Event     batchEventBody `json:"event"`
}

type batchEventBody struct {
	Type    EventType      `json:"type"`
	JobID   string         `json:"job_id,omitempty"`
	Details map[string]any `json:"details,omitempty"`
}

// payloadOf builds the batch_event payload of an event.
func payloadOf(ev Event) ([]byte, error) {
	body := batchEventBody{Type: ev.Type, JobID: ev.JobID}
	if j := ev.Job; j != nil {
		body.Details = map[string]any{
			"status":           j.Status,
			"total_operations": j.Progress.TotalOperations,
			"succeeded":        j.Progress.Completed,
			"failed":           j.Progress.Failed,
		}
		if j.StartedAt != nil {
			end := ev.At
			if j.FinishedAt != nil {
				end = *j.FinishedAt
			}
			body.Details["duration"] = formatDuration(end.Sub(*j.StartedAt))
		}
		if j.ScheduleID != "" {
			body.Details["schedule_id"] = j.ScheduleID
		}
		if j.Error != nil {
			body.Details["error"] = j.Error
		}
	}
	if ev.ObjectID != "" {
		if body.Details == nil {
			body.Details = map[string]any{}
		}
		body.Details["schedule_id"] = ev.ObjectID
	}
	return json.Marshal(batchEvent{Type: "batch_event", Timestamp: ev.At.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Event: body})
}

// outboxKey orders pending deliveries by due time.
func outboxKey(due time.Time, webhookID string, seq uint64) []byte {
	k := u64key(uint64(due.UnixNano()))
	k = append(k, webhookID...)
	k = append(k, 0)
	return append(k, u64key(seq)...)
}

// parseOutboxKey splits an outbox key.
func parseOutboxKey(k []byte) (time.Time, string, uint64, bool) {
	if len(k) < 8+1+8 {
		return time.Time{}, "", 0, false
	}
	due := time.Unix(0, int64(beUint64(k[:8])))
	rest := k[8:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 || len(rest)-i-1 != 8 {
		return time.Time{}, "", 0, false
	}
	return due, string(rest[:i]), beUint64(rest[i+1:]), true
}

// outboxLoop sends due deliveries: at most a few at a time per webhook, so
// one slow or dead receiver holds up only its own deliveries.
func (e *Engine) outboxLoop() {
	inFlight := map[string]int{}     // per webhook
	sending := map[string]struct{}{} // outbox keys being sent
	done := make(chan string)        // outbox key of a finished send
	client := e.webhookClient()
	defer client.CloseIdleConnections()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := e.dispatchDue(client, inFlight, sending, done)
		if d := time.Until(next); !next.IsZero() {
			timer.Reset(max(d, time.Millisecond))
		}
		select {
		case <-e.ctx.Done():
			for len(sending) > 0 {
				k := <-done
				delete(sending, k)
			}
			return
		case k := <-done:
			_, hook, _, _ := parseOutboxKey([]byte(k))
			inFlight[hook]--
			delete(sending, k)
		case <-e.outboxWake:
		case <-timer.C:
		}
	}
}

// dispatchDue starts sends for due deliveries and returns when the next
// one falls due (zero when none waits).
func (e *Engine) dispatchDue(client *http.Client, inFlight map[string]int, sending map[string]struct{}, done chan<- string) time.Time {
	if !e.leads(leaseOutbox) {
		return time.Time{} // the claim loop wakes us to try again
	}
	now := e.now()
	var next time.Time
	type due struct {
		key  string
		hook string
		seq  uint64
	}
	var start []due
	_ = e.store.View(func(tx Tx) error {
		return tx.Scan(bucketOutbox, nil, func(k, _ []byte) bool {
			at, hook, seq, ok := parseOutboxKey(k)
			if !ok {
				return true
			}
			if at.After(now) {
				if next.IsZero() || at.Before(next) {
					next = at
				}
				return false
			}
			if _, busy := sending[string(k)]; busy || inFlight[hook] >= webhookInFlightPerHook {
				return true
			}
			inFlight[hook]++
			sending[string(k)] = struct{}{}
			start = append(start, due{string(k), hook, seq})
			return true
		})
	})
	for _, d := range start {
		e.wg.Go(func() {
			e.deliver(client, d.key, d.hook, d.seq)
			done <- d.key
		})
	}
	return next
}

// deliver makes one attempt at a delivery and stores how it went.
func (e *Engine) deliver(client *http.Client, outbox, hookID string, seq uint64) {
	var hook Webhook
	var d Delivery
	err := e.store.View(func(tx Tx) error {
		if err := getObject(tx, deliveriesBucket(hookID), seq, "delivery", hookID, &d); err != nil {
			return err
		}
		if sseq, ok := parseObjectID(hookID, scheduleIDPrefix); ok {
			// A schedule's notification: signed with its secret.
			var s Schedule
			if err := getObject(tx, bucketSchedules, sseq, "schedule", hookID, &s); err != nil {
				return err
			}
			hook = Webhook{ID: s.ID, URL: d.URL, Secret: s.NotificationSecret}
			return nil
		}
		hseq, _ := parseObjectID(hookID, webhookIDPrefix)
		return getObject(tx, bucketWebhooks, hseq, "webhook", hookID, &hook)
	})
	switch {
	case errors.Is(err, ErrNotFound):
		// The webhook or delivery is gone: drop the outbox entry.
		_ = e.store.Update(func(tx Tx) error { return tx.Delete(bucketOutbox, []byte(outbox)) })
		return
	case err != nil:
		// The store could not be read: try again later, never drop it.
		e.log.Error("webhook: reading a delivery failed; it is retried", "webhook_id", hookID, "err", err)
		at := e.now().UTC().Add(retryLater)
		_ = e.store.Update(func(tx Tx) error {
			if tx.Get(bucketOutbox, []byte(outbox)) == nil {
				return nil
			}
			if err := tx.Delete(bucketOutbox, []byte(outbox)); err != nil {
				return err
			}
			return tx.Put(bucketOutbox, outboxKey(at, hookID, seq), []byte(hookID))
		})
		return
	}
	start := time.Now()
	code, sendErr := e.send(client, &hook, &d)
	took := time.Since(start)
	if e.ctx.Err() != nil {
		return // shutting down: the delivery stays due and goes out after a restart
	}
	now := e.now().UTC()
	d.Attempts++
	d.LastStatusCode = code
	d.LastError = ""
	if sendErr != nil {
		d.LastError = sendErr.Error()
	}
	var nextKey []byte
	switch {
	case sendErr == nil:
		d.Status, d.NextAttemptAt, d.SettledAt = DeliveryDelivered, nil, &now
	case d.Attempts >= e.opts.WebhookAttempts:
		d.Status, d.NextAttemptAt, d.SettledAt = DeliveryFailed, nil, &now
	default:
		delay := min(e.opts.WebhookRetryDelay<<min(d.Attempts-1, 20), webhookMaxDelay)
		at := now.Add(delay)
		d.NextAttemptAt = &at
		nextKey = outboxKey(at, hookID, seq)
	}
	err = e.store.Update(func(tx Tx) error {
		if err := tx.Delete(bucketOutbox, []byte(outbox)); err != nil {
			return err
		}
		if nextKey != nil {
			if err := tx.Put(bucketOutbox, nextKey, []byte(hookID)); err != nil {
				return err
			}
		}
		return putObject(tx, deliveriesBucket(hookID), seq, &d)
	})
	if err != nil {
		e.log.Error("webhook: storing a delivery attempt failed", "webhook_id", hookID, "err", err)
	}
	if o := e.obs; o != nil {
		outcome := "retry"
		switch d.Status {
		case DeliveryDelivered:
			outcome = "delivered"
		case DeliveryFailed:
			outcome = "failed"
		}
		o.ObserveDelivery(DeliveryObservation{WebhookID: hookID, Event: string(d.Event), Attempt: d.Attempts,
			Outcome: outcome, Status: code, Duration: took})
	}
}

// send POSTs a delivery's payload, signed. A non-2xx answer is an error.
func (e *Engine) send(client *http.Client, w *Webhook, d *Delivery) (int, error) {
	ts := e.now().Unix()
	sig, err := Sign(w.Secret, d.ID, ts, d.Payload)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.opts.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "batch-webhooks/1")
	req.Header.Set("webhook-id", d.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	if d.Severity != "" {
		req.Header.Set("X-Severity", d.Severity)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, fmt.Errorf("receiver answered %s", res.Status)
	}
	return res.StatusCode, nil
}

// errPrivateAddress is returned when a delivery would connect to an
// address webhooks may not reach.
var errPrivateAddress = errors.New("webhook URL resolves to a private or loopback address")

// webhookClient is the HTTP client of deliveries. Unless private webhooks
// are allowed, its dialer refuses every private address it would connect
// to, so a name that resolves differently at delivery time is caught too.
func (e *Engine) webhookClient() *http.Client {
	dialer := &net.Dialer{Timeout: e.opts.WebhookTimeout}
	if !e.opts.AllowPrivateWebhooks {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil || privateAddr(ip) {
				return errPrivateAddress
			}
			return nil
		}
	}
	return &http.Client{
		Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: webhookInFlightPerHook, IdleConnTimeout: time.Minute},
		// A redirect could lead anywhere: deliveries do not follow them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// cleanupDeliveries deletes webhook and notification deliveries settled
// before cutoff and returns how many. It pages through every webhook and
// schedule.
func (e *Engine) cleanupDeliveries(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	for _, bucket := range []string{bucketWebhooks, bucketSchedules} {
		var from []byte
		for {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			var ids []string
			var last []byte
			if err := e.store.View(func(tx Tx) error {
				var derr error
				err := tx.Scan(bucket, from, func(k, v []byte) bool {
					if len(ids) == 1000 {
						return false
					}
					var o struct {
						ID string `json:"id"`
					}
					if derr = json.Unmarshal(v, &o); derr != nil {
						return false
					}
					ids = append(ids, o.ID)
					last = append(last[:0], k...)
					return true
				})
				return firstErr(err, derr)
			}); err != nil {
				return n, err
			}
			for _, id := range ids {
				m, err := e.cleanupDeliveriesOf(id, cutoff)
				n += m
				if err != nil {
					return n, err
				}
			}
			if len(ids) < 1000 {
				break
			}
			from = u64key(beUint64(last) + 1)
		}
	}
	return n, nil
}

// cleanupDeliveriesOf deletes the deliveries of one webhook (or schedule)
// settled before cutoff.
func (e *Engine) cleanupDeliveriesOf(id string, cutoff time.Time) (int64, error) {
	var n int64
	err := e.store.Update(func(tx Tx) error {
		n = 0
		var keys [][]byte
		var derr error
		err := tx.Scan(deliveriesBucket(id), nil, func(k, v []byte) bool {
			var d Delivery
			if derr = json.Unmarshal(v, &d); derr != nil {
				return false
			}
			if d.SettledAt != nil && d.SettledAt.Before(cutoff) {
				keys = append(keys, bytes.Clone(k))
			}
			return true
		})
		if err := firstErr(err, derr); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(deliveriesBucket(id), k); err != nil {
				return err
			}
		}
		n = int64(len(keys))
		return nil
	})
	return n, err
}
