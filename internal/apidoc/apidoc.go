// Package apidoc holds the Batch API document's example requests, so that
// the tests that send them share one copy.
package apidoc

// Batch is the "batch" object of the document's "Create Batch Job" request.
const Batch = `{
    "type": "field_update",
    "description": "Update irrigation schedules for all active fields",
    "operations": [
        {
            "type": "update",
            "resource": "fields",
            "filter": {"status": "active", "irrigation_enabled": true},
            "update": {"irrigation_schedule": {"frequency": "daily", "start_time": "06:00", "duration_minutes": 30}}
        }
    ],
    "options": {
        "parallel": true,
        "max_concurrent": 5,
        "retry": {"attempts": 3, "backoff": "exponential"},
        "validation": {"mode": "strict", "on_error": "skip"}
    }
}`

// CreateBatchJob is the document's "Create Batch Job" request body.
const CreateBatchJob = `{"batch": ` + Batch + `}`
