// SPDX-License-Identifier: GPL-3.0-or-later
// Job compiler tests for flamenco/portrait_relight.js, run with `node --test flamenco/test/` (no npm packages).
// The script is loaded the way Flamenco Manager loads it (flamenco_stub.js says what that stub covers).

"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const stub = require("./flamenco_stub.js");

const SCRIPT = path.join(__dirname, "..", "portrait_relight.js");

const BASE = {
    blendfile: "/farm/jobs/sh010/scene.flamenco.blend",
    plate: "/farm/shots/sh010/plate.####.exr",
    output_dir: "/farm/shots/sh010/relit",
    frames: "1-10",
    chunk_size: 4,
    lighting: "world",
    hdri: "",
    hdri_rotation: 0,
    background: "",
    fov: 0,
    extra_args: "",
};

function compile(overrides) {
    return stub.compile(SCRIPT, Object.assign({}, BASE, overrides));
}

function argvs(overrides) {
    return compile(overrides).tasks.map((t) => stub.blenderRenderArgv(t.commands[0]));
}

function framesOf(result) {
    return result.tasks.map((t) => {
        const args = t.commands[0].parameters.args;
        assert.equal(args[args.length - 2], "--frames");
        return args[args.length - 1];
    });
}

const HEAD = ["blender", "-b", "-y", "--disable-autoexec", BASE.blendfile, "-c", "portrait_relight", BASE.plate, "--out", BASE.output_dir];

test("loads like the Manager: name from file, label, compileJob", () => {
    const loaded = stub.loadJobType(SCRIPT);
    assert.equal(loaded.name, "portrait-relight");
    assert.equal(loaded.jobType.label, "Portrait Relight");
    assert.equal(typeof loaded.compileJob, "function");
});

test("settings schema: every field with its type, valid for the Manager", () => {
    const { jobType } = stub.loadJobType(SCRIPT);
    assert.deepEqual(stub.schemaProblems(jobType), []);
    const byKey = Object.fromEntries(jobType.settings.map((s) => [s.key, s]));
    const expected = {
        blendfile: ["string", undefined, true],
        plate: ["string", "file_path", true],
        output_dir: ["string", "dir_path", true],
        frames: ["string", undefined, true],
        chunk_size: ["int32", undefined, undefined],
        lighting: ["string", undefined, true],
        hdri: ["string", "file_path", undefined],
        hdri_rotation: ["float", undefined, undefined],
        background: ["string", "file_path", undefined],
        fov: ["float", undefined, undefined],
        extra_args: ["string", undefined, undefined],
    };
    assert.deepEqual(Object.keys(byKey).sort(), Object.keys(expected).sort());
    for (const [key, [type, subtype, required]] of Object.entries(expected)) {
        assert.equal(byKey[key].type, type, key);
        assert.equal(byKey[key].subtype, subtype, key);
        assert.equal(byKey[key].required, required, key);
        assert.equal(typeof byKey[key].description, "string", key);
    }
    assert.deepEqual(byKey.lighting.choices, ["world", "hdri", "background"]);
    assert.equal(byKey.lighting.default, "world");
    assert.equal(byKey.chunk_size.default, 24);
    assert.equal(byKey.fov.default, 0);
    assert.equal(byKey.hdri_rotation.default, 0);
    // The Blender add-on fills in the BAT-packed file only for a string setting keyed exactly "blendfile".
    assert.equal(byKey.blendfile.visible, "web");
    assert.match(byKey.frames.eval, /C\.scene\.frame_start/);
});

test("1-10 in chunks of 4 gives 1-4, 5-8, 9-10: one independent blender task each", () => {
    const result = compile({ frames: "1-10", chunk_size: 4 });
    assert.deepEqual(framesOf(result), ["1-4", "5-8", "9-10"]);
    assert.deepEqual(result.tasks.map((t) => t.name), ["relight-1-4", "relight-5-8", "relight-9-10"]);
    for (const task of result.tasks) {
        assert.equal(task.type, "blender");
        assert.equal(task.commands.length, 1);
        assert.equal(task.commands[0].type, "blender-render");
        assert.deepEqual(task.dependencies, []);
    }
});

test("frame lists chunk in frame order, inclusive, compacted", () => {
    assert.deepEqual(framesOf(compile({ frames: "1,5,9-12", chunk_size: 4 })), ["1,5,9-10", "11-12"]);
    assert.deepEqual(framesOf(compile({ frames: "1,5,9-12", chunk_size: 2 })), ["1,5", "9-10", "11-12"]);
    assert.deepEqual(framesOf(compile({ frames: "1,5,9-12", chunk_size: 1 })), ["1", "5", "9", "10", "11", "12"]);
    assert.deepEqual(framesOf(compile({ frames: "1,5,9-12", chunk_size: 100 })), ["1,5,9-12"]);
    // Spaces, unsorted parts and overlaps: a set of frames, each relit once.
    assert.deepEqual(framesOf(compile({ frames: " 12, 1 - 3 ,2,0", chunk_size: 10 })), ["0-3,12"]);
    assert.deepEqual(framesOf(compile({ frames: "47", chunk_size: 4 })), ["47"]);
    assert.deepEqual(framesOf(compile({ frames: "1-240", chunk_size: 24 })).length, 10);
    assert.deepEqual(framesOf(compile({ frames: 7, chunk_size: 3 })), ["7"]); // number via the API
});

test("command line for lighting 'world' uses the job's blend file", () => {
    assert.deepEqual(argvs({ frames: "1-2", chunk_size: 4 }), [
        HEAD.concat(["--world-blend", BASE.blendfile, "--frames", "1-2"]),
    ]);
});

test("command line for lighting 'hdri' with rotation and fov", () => {
    assert.deepEqual(argvs({ frames: "1-5", chunk_size: 3, lighting: "hdri", hdri: "/farm/hdri/studio 2k.exr",
                             hdri_rotation: -92.5, fov: 35 }), [
        HEAD.concat(["--hdri", "/farm/hdri/studio 2k.exr", "--hdri-rotation", "-92.5", "--fov", "35",
                     "--frames", "1-3"]),
        HEAD.concat(["--hdri", "/farm/hdri/studio 2k.exr", "--hdri-rotation", "-92.5", "--fov", "35",
                     "--frames", "4-5"]),
    ]);
    // Rotation 0 is still passed (the CLI accepts it with --hdri); fov 0 means automatic and is left out.
    assert.deepEqual(argvs({ frames: "3", lighting: "hdri", hdri: "/h.hdr" }), [
        HEAD.concat(["--hdri", "/h.hdr", "--hdri-rotation", "0", "--frames", "3"]),
    ]);
});

test("command line for lighting 'background'", () => {
    assert.deepEqual(argvs({ frames: "1,5,9-12", chunk_size: 4, lighting: "background", background: "/farm/bg.exr" }), [
        HEAD.concat(["--background", "/farm/bg.exr", "--frames", "1,5,9-10"]),
        HEAD.concat(["--background", "/farm/bg.exr", "--frames", "11-12"]),
    ]);
});

test("a background with 'world' or 'hdri' lighting is the composite plate; extra args are split", () => {
    assert.deepEqual(argvs({ frames: "1", background: "/bg.png", extra_args: "--threads 8  --models-dir '/farm/my models'" }), [
        HEAD.concat(["--world-blend", BASE.blendfile, "--background", "/bg.png",
                     "--threads", "8", "--models-dir", "/farm/my models", "--frames", "1"]),
    ]);
    assert.deepEqual(argvs({ frames: "1", lighting: "hdri", hdri: "/h.exr", hdri_rotation: 90, background: "/bg.png" }), [
        HEAD.concat(["--hdri", "/h.exr", "--hdri-rotation", "90", "--background", "/bg.png", "--frames", "1"]),
    ]);
    // hdri settings are ignored unless lighting is 'hdri' (the CLI refuses --hdri-rotation without --hdri).
    assert.deepEqual(argvs({ frames: "1", hdri: "/h.exr", hdri_rotation: 45 }), [
        HEAD.concat(["--world-blend", BASE.blendfile, "--frames", "1"]),
    ]);
});

test("raw blender-render parameters: Manager variables left for the Worker to expand", () => {
    const { tasks } = compile({ frames: "1-4" });
    assert.deepEqual(tasks[0].commands[0].parameters, {
        exe: "{blender}",
        exeArgs: "{blenderArgs}",
        argsBefore: ["--disable-autoexec"],
        blendfile: BASE.blendfile,
        args: ["-c", "portrait_relight", BASE.plate, "--out", BASE.output_dir,
               "--world-blend", BASE.blendfile, "--frames", "1-4"],
    });
    // A site with other Blender flags or a Windows path with spaces: still one argument each, no shell.
    const argv = stub.blenderRenderArgv(tasks[0].commands[0],
        { blender: "C:\\Program Files\\Blender Foundation\\Blender 5.0\\blender.exe", blenderArgs: "-b -y --debug-cycles" });
    assert.deepEqual(argv.slice(0, 6), ["C:\\Program Files\\Blender Foundation\\Blender 5.0\\blender.exe",
                                        "-b", "-y", "--debug-cycles", "--disable-autoexec", BASE.blendfile]);
});

test("only the required settings: defaults apply (world lighting, chunks of 24)", () => {
    const result = stub.compile(SCRIPT, { blendfile: "/b.blend", plate: "/p.mov", output_dir: "/o", frames: "1-30" });
    assert.deepEqual(framesOf(result), ["1-24", "25-30"]);
    assert.deepEqual(stub.blenderRenderArgv(result.tasks[0].commands[0]),
        ["blender", "-b", "-y", "--disable-autoexec", "/b.blend", "-c", "portrait_relight", "/p.mov", "--out", "/o",
         "--world-blend", "/b.blend", "--frames", "1-24"]);
});

test("invalid frame strings are refused with a clear error", () => {
    const cases = {
        "": /frames "" is empty/,
        "   ": /is empty/,
        "abc": /frames "abc": "abc" is not a frame or range/,
        "10-1": /"10-1" runs backwards/,
        "1-": /"1-" is not a frame or range/,
        "1,,2": /is an empty part/,
        "1,": /is an empty part/,
        "1.5": /"1.5" is not a frame or range/,
        "-3": /"-3" is not a frame or range/,
        "1-3-5": /"1-3-5" is not a frame or range/,
        "1..10": /"1..10" is not a frame or range/,
        "1-99999999999": /makes more than 1000000 frames/,
    };
    for (const [frames, message] of Object.entries(cases)) {
        assert.throws(() => compile({ frames: frames }), (err) => {
            // An Error from the script's own realm (the VM context), so not `instanceof` this realm's Error.
            assert.equal(Object.prototype.toString.call(err), "[object Error]", `${JSON.stringify(frames)}`);
            assert.match(err.message, message);
            assert.match(err.message, /^Portrait Relight: frames /);
            return true;
        }, `frames ${JSON.stringify(frames)}`);
    }
    assert.throws(() => compile({ frames: undefined }), /frames undefined is empty/);
    for (const size of [0, -1, 2.5, "4"]) {
        assert.throws(() => compile({ chunk_size: size }), /chunk_size .* must be a whole number of at least 1/);
    }
});

test("missing or contradictory settings are refused at submission", () => {
    assert.throws(() => compile({ lighting: "hdri" }), /lighting "hdri" needs the "hdri" setting/);
    assert.throws(() => compile({ lighting: "background" }), /lighting "background" needs the "background" setting/);
    assert.throws(() => compile({ lighting: "sun" }), /lighting "sun" is not one of world, hdri, background/);
    assert.throws(() => compile({ plate: "" }), /setting "plate" is required/);
    assert.throws(() => compile({ output_dir: undefined }), /setting "output_dir" is required/);
    assert.throws(() => compile({ blendfile: " " }), /setting "blendfile" is required/);
    assert.throws(() => compile({ fov: 200 }), /fov 200 must be 0 \(automatic\) or between 1 and 170/);
    assert.throws(() => compile({ fov: 0.5 }), /fov 0.5 must be/);
    assert.throws(() => compile({ lighting: "hdri", hdri: "/h.exr", hdri_rotation: "x" }), /"hdri_rotation" must be a number/);
    assert.throws(() => compile({ extra_args: "--frames 1-3" }), /may not contain --frames/);
    assert.throws(() => compile({ extra_args: "--out=/x" }), /may not contain --out/);
    assert.throws(() => compile({ extra_args: "--fr 3" }), /may not contain --fr: the job sets --frames/);
    assert.throws(() => compile({ extra_args: "--threads '4" }), /unclosed ' quote/);
});

test("tasks are complete when added and the job type leaves no global state", () => {
    const a = compile({ frames: "1-8", chunk_size: 4 });
    const b = compile({ frames: "1-8", chunk_size: 4 });
    assert.deepEqual(a.tasks.map((t) => t.commands[0].parameters), b.tasks.map((t) => t.commands[0].parameters));
    assert.equal(new Set(a.tasks.map((t) => t.name)).size, a.tasks.length);
    assert.ok(a.log.some((line) => line.includes("2 task(s)")), a.log.join("\n"));
});
