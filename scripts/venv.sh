# Sourced by ./run and ./test: create .venv with Python 3.11 and install the pinned
# requirements when they changed since the last install (a stamp file remembers).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLOWSYNC_VENV:-$ROOT/.venv}"
REQS="${1:-requirements-dev.txt}"

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Flowsync needs Python 3.11 (set PYTHON=/path/to/python3.11)." >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> Creating virtualenv in $VENV"
  "$(pick_python)" -m venv "$VENV"
fi
NAME="${REQS%.txt}"
STAMP="$VENV/.installed-$NAME-$(cat "$ROOT/requirements.txt" "$ROOT/$REQS" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  echo "==> Installing $REQS"
  # (grep drops the noise of pip index locations some machines configure but lack)
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/$REQS" 2> >(grep -v "^WARNING: Location" >&2)
  rm -f "$VENV/.installed-$NAME-"*
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
