"""The E2B door driven by E2B's own JS SDK from npm (unchanged, ``tests/e2e/e2b_js/``): create,
commands (foreground, background, stdin, list, kill), files, PTY, signed URLs and kill, as an E2B
JavaScript program runs them once ``E2B_API_URL`` / ``E2B_SANDBOX_URL`` point at Shells."""

from __future__ import annotations

from .e2b_js_sdk import run_e2b_js
from .test_e2b_door import Door, door  # noqa: F401  (door: the module's own server)

SCENARIO = """
import { Sandbox, CommandExitError, NotFoundError } from 'e2b'

const out = {}
const sbx = await Sandbox.create({ metadata: { case: 'js' } })
out.id = sbx.sandboxId
try {
  const r = await sbx.commands.run('echo hello; id -un; pwd; echo err >&2')
  out.run = [r.stdout, r.stderr, r.exitCode]
  out.root = (await sbx.commands.run('whoami', { user: 'root' })).stdout
  try {
    await sbx.commands.run('echo bye; exit 3')
  } catch (e) {
    out.exit3 = [e instanceof CommandExitError, e.exitCode, e.stdout]
  }

  const cat = await sbx.commands.run('cat', { background: true, stdin: true })
  out.listed = (await sbx.commands.list()).map((p) => p.pid).includes(cat.pid)
  await sbx.commands.sendStdin(cat.pid, 'line one\\n')
  await sbx.commands.closeStdin(cat.pid)
  out.cat = (await cat.wait()).stdout
  const seen = []
  const ticker = await sbx.commands.run('for i in 1 2 3; do echo tick$i; sleep 0.2; done', {
    background: true, onStdout: (line) => { seen.push(line.trim()) },
  })
  await ticker.wait()
  out.ticks = seen.join('').replace(/\\s/g, '')
  const sleeper = await sbx.commands.run('sleep 300', { background: true })
  out.kill = await sbx.commands.kill(sleeper.pid)
  try { await sleeper.wait() } catch (e) { out.killed = e instanceof CommandExitError }
  out.after_kill = (await sbx.commands.list()).map((p) => p.pid).includes(sleeper.pid)
  try { await sbx.commands.connect(999999) } catch (e) { out.connect_unknown = e instanceof NotFoundError }

  await sbx.files.write('notes/a.txt', 'hi from js')
  out.read = await sbx.files.read('notes/a.txt')
  await sbx.files.write([{ path: 'notes/b.txt', data: 'b' }, { path: '/tmp/c.txt', data: 'c' }])
  out.list = (await sbx.files.list('notes')).map((e) => [e.name, e.type]).sort()
  out.exists = [await sbx.files.exists('notes/b.txt'), await sbx.files.exists('notes/zzz')]
  out.owner = (await sbx.commands.run('stat -c %U /home/user/notes/a.txt')).stdout.trim()
  const url = await sbx.downloadUrl('notes/a.txt')
  const fetched = await fetch(url)  // no key, no headers: the signature is the credential
  out.signed = [fetched.status, await fetched.text()]

  const chunks = []
  const onData = (d) => { chunks.push(Buffer.from(d)) }
  const terminal = await sbx.pty.create({ cols: 80, rows: 24, onData })
  await sbx.pty.resize(terminal.pid, { cols: 120, rows: 40 })
  await sbx.pty.sendInput(terminal.pid, new TextEncoder().encode('stty size; echo pty-$((6*7))\\nexit\\n'))
  await terminal.wait()
  const screen = Buffer.concat(chunks).toString()
  out.pty = [screen.includes('40 120'), screen.includes('pty-42')]
} finally {
  out.killed_sandbox = await sbx.kill()
}
const listed = await Sandbox.list().nextItems()
out.running_after = listed.some((s) => s.sandboxId === out.id)
console.log(JSON.stringify(out))
"""


def test_the_unchanged_e2b_js_sdk_drives_the_door(door: Door) -> None:  # noqa: F811
    out = run_e2b_js(SCENARIO, door.env(door.key()))
    assert out["run"] == ["hello\nuser\n/home/user\n", "err\n", 0]
    assert out["root"] == "root\n"
    assert out["exit3"] == [True, 3, "bye\n"]
    assert out["listed"] is True
    assert out["cat"] == "line one\n"
    assert out["ticks"] == "tick1tick2tick3"
    assert out["kill"] is True and out["killed"] is True and out["after_kill"] is False
    assert out["connect_unknown"] is True
    assert out["read"] == "hi from js"
    assert out["list"] == [["a.txt", "file"], ["b.txt", "file"]]
    assert out["exists"] == [True, False]
    assert out["owner"] == "user"
    assert out["signed"] == [200, "hi from js"]
    assert out["pty"] == [True, True]
    assert out["killed_sandbox"] is True
    assert out["running_after"] is False
