// @shells/sdk's volumes and stored bucket credentials end to end against a real server: a volume written
// by one shell is read by the next (attached at create), stored credentials never show their secret,
// and each failure arrives as the class of its code.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AlreadyExists, BucketCredentialsNotFound, VolumeInUse, VolumeNotFound } from "@shells/sdk";

import { client, withShell } from "./support.js";

test("a volume outlives the shell that wrote it and is read by the next", async () => {
  const shells = client();
  const name = `ts-vol-${Date.now()}`;
  const volume = await shells.volumes.create(name, 1);
  try {
    assert.equal(volume.sizeGib, 1);
    assert.ok((await shells.volumes.list()).some((v) => v.name === name));
    await withShell({ volumes: [{ name, path: "/data" }] }, async (shell) => {
      await shell.files.write("/data/kept.txt", "from the first shell");
      await assert.rejects(shells.volumes.delete(name), VolumeInUse);
    });
    await withShell({ volumes: [{ name, path: "/data", read_only: true }] }, async (shell) => {
      assert.equal(await shell.files.readText("/data/kept.txt"), "from the first shell");
      assert.deepEqual((await shells.volumes.get(name)).attached, [{ shellId: shell.id, readOnly: true }]);
    });
  } finally {
    await shells.volumes.delete(name);
  }
  await assert.rejects(shells.volumes.get(name), VolumeNotFound);
});

test("bucket credentials are stored once, listed without their secret, and named at create", async () => {
  const shells = client();
  const name = `ts-creds-${Date.now()}`;
  const stored = await shells.bucketCredentials.create(name, "AKIATSEXAMPLE", "ts-secret-never-shown");
  try {
    assert.equal(stored.name, name);
    assert.equal(stored.accessKeyId, "AKIATSEXAMPLE");
    const listed = await shells.bucketCredentials.list();
    assert.ok(listed.some((c) => c.name === name));
    assert.ok(!JSON.stringify(listed).includes("ts-secret-never-shown"));
    await assert.rejects(shells.bucketCredentials.create(name, "AKIATSEXAMPLE", "again"), AlreadyExists);
  } finally {
    await shells.bucketCredentials.delete(name);
  }
  await assert.rejects(shells.bucketCredentials.delete(name), BucketCredentialsNotFound);
  const mounts = [{ bucket: "runs", endpoint: "http://127.0.0.1:9", path: "/data", credentials: name }];
  await assert.rejects(shells.create({ mounts }), (error: unknown) => {
    assert.ok(error instanceof BucketCredentialsNotFound);
    assert.equal(error.details.field, "mounts[0].credentials");
    return true;
  });
});
