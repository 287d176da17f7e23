package batch

// StopRequested reports whether job id runs in e and has been told to stop
// (pause, cancel, failure or Close), whatever its stored state still says.
// Tests use it to act exactly once a control call has taken effect, not
// after a guessed delay.
func StopRequested(e *Engine, id string) bool {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	return r != nil && r.stopping()
}

// Working reports whether e runs job id or is helping with the items of a
// job another process shares. Once no process works on a paused job, none
// of its items can run until it is resumed.
func Working(e *Engine, id string) bool {
	return e.live(id) || e.helping.Load()
}

// KeepsHelpPlan reports whether e keeps the plan of a shared pass it
// helped with.
func KeepsHelpPlan(e *Engine) bool {
	return e.helpPlan.Load() != nil
}
