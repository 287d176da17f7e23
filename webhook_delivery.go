package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// This file holds the webhook sender: the outbox loop that sends due
// deliveries (a few at a time per webhook), one attempt at a delivery
// with its retry schedule, the signed request, the HTTP client that
// refuses private addresses, and the cleanup of settled deliveries.

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
	token, ok := e.leadToken(leaseOutbox)
	if !ok {
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
			if key, ok := e.takeAttempt(d.key, d.hook, d.seq, token); ok {
				e.deliver(client, key, d.hook, d.seq)
			}
			done <- d.key
		})
	}
	return next
}

// errNotLeader refuses an attempt taken by a process that no longer
// holds the outbox lease.
var errNotLeader = errors.New("batch: the outbox lease changed hands")

// takeAttempt makes the attempt at the delivery under outbox key this
// process's own, on a store several processes share: in one transaction
// that checks the outbox lease is still held under token, it moves the
// entry out of sight for as long as an attempt can take, so no other
// process attempts it meanwhile. It returns the key the entry now has, and
// false when the entry is gone or the lease changed hands. On a store of
// its own the engine is the only sender and nothing is written.
func (e *Engine) takeAttempt(outbox, hookID string, seq uint64, token uint64) (string, bool) {
	if e.claimer == nil {
		return outbox, true
	}
	taken := outboxKey(e.now().UTC().Add(e.opts.WebhookTimeout+attemptGrace), hookID, seq)
	err := e.store.Update(func(tx Tx) error {
		lt, ok := tx.(LeaseTx)
		if !ok {
			return errNoLeaseTx
		}
		held, err := lt.HoldsLease(leaseOutbox, token)
		if err != nil {
			return err
		}
		if !held {
			return errNotLeader
		}
		if tx.Get(bucketOutbox, []byte(outbox)) == nil {
			return ErrNotFound // another process attempted it
		}
		if err := tx.Delete(bucketOutbox, []byte(outbox)); err != nil {
			return err
		}
		return tx.Put(bucketOutbox, taken, []byte(hookID))
	})
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			e.log.Warn("webhook: attempt not taken", "webhook_id", hookID, "err", err)
		}
		return "", false
	}
	return string(taken), true
}

// attemptGrace is how long past the webhook timeout a taken attempt stays
// out of other processes' sight: the time to store how it went.
const attemptGrace = 30 * time.Second

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
// schedule, a thousand per read; an object's key is its id's sequence.
func (e *Engine) cleanupDeliveries(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	for _, objs := range []struct{ bucket, kind string }{{bucketWebhooks, webhookIDPrefix}, {bucketSchedules, scheduleIDPrefix}} {
		var from []byte
		for more := true; more; {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			var ids []string
			if err := e.store.View(func(tx Tx) (err error) {
				more, err = scanPage(tx, objs.bucket, &from, 1000, func(k, _ []byte) bool {
					ids = append(ids, objs.kind+strconv.FormatUint(beUint64(k), 10))
					return true
				})
				return err
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
		}
	}
	return n, nil
}

// cleanupDeliveriesOf deletes the deliveries of one webhook (or schedule)
// settled before cutoff.
func (e *Engine) cleanupDeliveriesOf(id string, cutoff time.Time) (int64, error) {
	var n int
	err := e.store.Update(func(tx Tx) (err error) {
		n, err = deleteMatching(tx, deliveriesBucket(id), func(_, v []byte) (bool, error) {
			var d Delivery
			if err := json.Unmarshal(v, &d); err != nil {
				return false, err
			}
			return d.SettledAt != nil && d.SettledAt.Before(cutoff), nil
		})
		return err
	})
	return int64(n), err
}

// removeDeliveries deletes the deliveries of webhook id, pending ones
// included.
func removeDeliveries(w *wtx, id string) error {
	_, err := deleteMatching(w.Tx, bucketOutbox, func(_, v []byte) (bool, error) { return string(v) == id, nil })
	if err != nil {
		return err
	}
	return w.DeleteBucket(deliveriesBucket(id))
}

// deleteMatching deletes the entries of bucket that match picks and
// returns how many went.
func deleteMatching(tx Tx, bucket string, match func(k, v []byte) (bool, error)) (int, error) {
	var keys [][]byte
	var merr error
	err := tx.Scan(bucket, nil, func(k, v []byte) bool {
		ok, err := match(k, v)
		if err != nil {
			merr = err
			return false
		}
		if ok {
			keys = append(keys, bytes.Clone(k))
		}
		return true
	})
	if err := firstErr(err, merr); err != nil {
		return 0, err
	}
	return len(keys), deleteKeys(tx, bucket, keys)
}
