// Wrong types in a call are compile errors: `tsc` fails on an `@ts-expect-error` that has no error
// under it, so building the tests proves each line below is refused.
import { Shells, type ActionName } from "@shells/sdk";

export async function refused(shells: Shells): Promise<void> {
  // @ts-expect-error: a language is a string
  await shells.create({ language: 42 });
  // @ts-expect-error: not a language the server offers (the OpenAPI document's enum)
  await shells.create({ language: "cobol" });
  // @ts-expect-error: not an isolation class
  await shells.create({ runtime: "vm" });
  // @ts-expect-error: not a shape
  await shells.createSandbox({ shape: "huge", rootfs: "devbox:1" });
  // @ts-expect-error: not a network mode
  await shells.create({ network: "open" });
  // @ts-expect-error: not an action
  await shells.action("sh_x", "explode");
  // @ts-expect-error: an option that does not exist
  await shells.create({ langauge: "python" });
  const shell = await shells.create();
  // @ts-expect-error: arguments are strings
  await shell.runCommand("node", [1]);
  // @ts-expect-error: the signal must be an AbortSignal
  await shell.files.read("/x", { signal: "stop" });
  const action: ActionName = "wipe_state";
  await shells.action(shell.id, action);
}
