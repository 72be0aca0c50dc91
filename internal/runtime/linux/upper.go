package linux

import "context"

// UpperDirs returns the host directories that hold the sandbox's writes
// to each overlay of its Spec, in Spec order (overlayfs upper dirs, with
// overlayfs whiteouts and opaque markers). Read them while the sandbox is
// stopped; they are removed with the sandbox. Returns errdefs.ErrNotFound
// for an unknown id. Template builds turn them into layers.
func (d *Driver) UpperDirs(ctx context.Context, id string) ([]string, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	defer d.locks.lock(id)()
	l, spec, err := d.sandboxSpec(id)
	if err != nil {
		return nil, err
	}
	dirs := make([]string, len(spec.Overlays))
	for i := range spec.Overlays {
		dirs[i] = l.upper(i)
	}
	return dirs, nil
}
