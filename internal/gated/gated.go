// Package gated gives tests an item handler that holds each item until the
// test lets it through, so that they can act while items are in flight.
package gated

import (
	"context"

	"github.com/batchworks/batch"
)

// Run returns an item handler that holds each item until it takes a value
// from gate or gate is closed (a nil gate holds it until its context
// ends); with finishOnStop, also until its job is asked to stop
// ([batch.Stopping]), so that a pause answers as soon as it has taken hold.
// An item whose context ends returns the context's error.
func Run(gate <-chan struct{}, finishOnStop bool) func(ctx context.Context, it *batch.Item) error {
	return func(ctx context.Context, it *batch.Item) error {
		var stopping <-chan struct{} // nil: never
		if finishOnStop {
			stopping = batch.Stopping(ctx)
		}
		select {
		case <-gate:
			return nil
		case <-stopping:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
