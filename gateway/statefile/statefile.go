// Package statefile writes the files vgate keeps in state_dir (the
// point-to-site registry, the remembered endpoints) so that a crash at any
// point leaves either the old or the new content, never a torn file.
package statefile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteAtomic replaces path with data (mode 0600): a temporary file in the
// same directory, fsync, rename over path, fsync of the directory. The
// directory is created (0700) if missing. On error path is unchanged and
// no temporary file is left.
func WriteAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
