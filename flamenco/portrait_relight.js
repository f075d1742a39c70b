// SPDX-License-Identifier: GPL-3.0-or-later
//
// Flamenco 3 job type "Portrait Relight": relights a portrait plate (image sequence or movie) on a render
// farm by running the extension's command line once per chunk of frames:
//
//   {blender} {blenderArgs} <blendfile> -c portrait_relight <plate> --out <dir>
//       [--world-blend <blendfile> | --hdri <file> --hdri-rotation <deg> | --background <img>]
//       [--background <img>] [--fov <deg>] [extra args...] --frames <chunk>
//
// Install: copy this file into the `scripts/` folder beside the flamenco-manager executable and restart the
// Manager. The job type name is derived from the file name: `portrait_relight.js` -> "portrait-relight".
//
// The Manager runs this file with goja (ES2015+, compiled in strict mode), so it sticks to plain ES2015 and
// uses only the documented globals: `author`, `print`. It does not use the Manager's `frameChunker()`: the
// chunker below accepts exactly the frame syntax our CLI's `--frames` accepts (`A-B`, `N`, comma lists), and
// rejects what the CLI would reject, so a bad frame string fails at submission instead of on every worker.

const LIGHTING_CHOICES = ["world", "hdri", "background"];
const MAX_FRAMES = 1000000; // A typo like "1-10000000000" should fail at submission, not exhaust memory.

const JOB_TYPE = {
    label: "Portrait Relight",
    description: "Relight a portrait plate (image sequence or movie) with the Portrait Relight extension, " +
        "in chunks of frames that run in parallel",
    settings: [
        // Filled in by the Flamenco add-on with the path of the submitted (BAT-packed) blend file, because the
        // key is exactly "blendfile" and the type is "string".
        { key: "blendfile", type: "string", required: true, visible: "web",
          description: "Blend file Blender opens on the Worker (the job's submitted file); with lighting " +
              "'world' its world HDRI and active camera are the light source" },

        { key: "plate", type: "string", subtype: "file_path", required: true, visible: "submission",
          description: "Portrait plate as the Workers see it: an image sequence pattern like " +
              "'/shots/sh010/plate.####.exr' or a movie file. Not packed with the job: it must be on shared storage" },
        { key: "output_dir", type: "string", subtype: "dir_path", required: true, visible: "submission",
          eval: "str(abspath(bpy.path.abspath('//relit')))",
          evalInfo: { showLinkButton: true, description: "Folder 'relit' beside the current blend file" },
          description: "Folder the relit EXRs and previews are written to (shared storage, as the Workers see it)" },

        { key: "frames", type: "string", required: true, visible: "submission",
          eval: "f'{C.scene.frame_start}-{C.scene.frame_end}'",
          evalInfo: { showLinkButton: true, description: "Scene frame range" },
          description: "Frames of the plate to relight. Examples: '47', '1-240', '1,5,9-12' (inclusive)" },
        { key: "chunk_size", type: "int32", default: 24, propargs: { min: 1 }, visible: "submission",
          description: "Number of frames relit by one task (one Blender start, one model load)" },

        { key: "lighting", type: "string", choices: LIGHTING_CHOICES, default: "world", required: true,
          visible: "submission",
          description: "Light source: 'world' = the blend file's world HDRI seen from its active camera, " +
              "'hdri' = an equirectangular HDR/EXR file, 'background' = estimated from the background plate" },
        { key: "hdri", type: "string", subtype: "file_path", default: "", visible: "submission",
          description: "Equirectangular HDR/EXR for lighting 'hdri' (shared storage, as the Workers see it)" },
        { key: "hdri_rotation", type: "float", default: 0.0, propargs: { min: -360.0, max: 360.0 },
          visible: "submission",
          description: "Degrees to turn the HDRI about the vertical axis (lighting 'hdri' only)" },
        { key: "background", type: "string", subtype: "file_path", default: "", visible: "submission",
          description: "Background plate the subject is composited onto. Required for lighting 'background' " +
              "(the light is estimated from it); optional with 'world' and 'hdri'" },
        { key: "fov", type: "float", default: 0.0, propargs: { min: 0.0, max: 170.0 }, visible: "submission",
          description: "Camera field of view in degrees across the larger image side; 0 = automatic " +
              "(the blend camera's for 'world', otherwise 40)" },
        { key: "extra_args", type: "string", default: "", visible: "submission",
          description: "More portrait_relight arguments, split like a shell would, e.g. '--threads 8' or " +
              "'--models-dir /farm/models'" },
    ],
};

function compileJob(job) {
    const settings = job.settings;
    const blendfile = requiredString(settings, "blendfile");
    const plate = requiredString(settings, "plate");
    const outputDir = requiredString(settings, "output_dir");
    const chunkSize = settings.chunk_size === undefined ? 24 : settings.chunk_size;
    const chunks = chunkFrames(settings.frames, chunkSize);
    const relightArgs = lightingArgs(settings, blendfile).concat(fovArgs(settings), extraArgs(settings));

    print("Portrait Relight:", plate, "->", outputDir, "in", chunks.length, "task(s)");
    for (const chunk of chunks) {
        const task = author.Task("relight-" + chunk, "blender");
        // `blender-render`, not `exec`: the Flamenco docs ask for the specific command where there is one. It
        // builds `{exe} {exeArgs} {argsBefore} {blendfile} {args}` from an argument list (no shell, so paths
        // with spaces need no quoting), expands {blender} / {blenderArgs} per Worker platform, finds Blender on
        // Windows through the .blend file association, and fails the task on a non-zero exit status. `args` can
        // hold any Blender CLI arguments, so `-c portrait_relight ...` fits. {blenderArgs} is the Manager's
        // variable for Blender's own flags; its default `-b -y` gives us the headless `-b`, but its `-y` would
        // let the submitted .blend run its own scripts and drivers when the Worker opens it: `--disable-autoexec`
        // after it and before the file wins (Blender applies its arguments in order). Our command needs none.
        task.addCommand(author.Command("blender-render", {
            exe: "{blender}",
            exeArgs: "{blenderArgs}",
            argsBefore: ["--disable-autoexec"],
            blendfile: blendfile,
            args: ["-c", "portrait_relight", plate, "--out", outputDir].concat(relightArgs, ["--frames", chunk]),
        }));
        // No dependencies: the CLI writes each frame atomically and rewriting a frame gives the same file, so
        // chunks run in parallel on any Workers and a failed or cancelled task can simply be requeued.
        job.addTask(task);
    }
}

function requiredString(settings, key) {
    const value = settings[key];
    if (typeof value !== "string" || value.trim() === "") {
        throw new Error(`Portrait Relight: setting "${key}" is required`);
    }
    return value;
}

function optionalString(settings, key) {
    const value = settings[key];
    if (value === undefined || value === null) return "";
    if (typeof value !== "string") throw new Error(`Portrait Relight: setting "${key}" must be a string`);
    return value.trim();
}

function finiteNumber(settings, key, fallback) {
    const value = settings[key] === undefined || settings[key] === null ? fallback : settings[key];
    if (typeof value !== "number" || !isFinite(value)) {
        throw new Error(`Portrait Relight: setting "${key}" must be a number, got ${JSON.stringify(value)}`);
    }
    return value;
}

function lightingArgs(settings, blendfile) {
    const lighting = settings.lighting === undefined ? "world" : settings.lighting;
    const background = optionalString(settings, "background");
    const composite = background ? ["--background", background] : [];
    switch (lighting) {
        case "world":
            return ["--world-blend", blendfile].concat(composite);
        case "hdri": {
            const hdri = optionalString(settings, "hdri");
            if (!hdri) throw new Error('Portrait Relight: lighting "hdri" needs the "hdri" setting (an HDR/EXR file)');
            const rotation = finiteNumber(settings, "hdri_rotation", 0);
            return ["--hdri", hdri, "--hdri-rotation", String(rotation)].concat(composite);
        }
        case "background":
            if (!background) {
                throw new Error('Portrait Relight: lighting "background" needs the "background" setting (an image)');
            }
            return composite;
        default:
            throw new Error(`Portrait Relight: lighting ${JSON.stringify(lighting)} is not one of ` +
                LIGHTING_CHOICES.join(", "));
    }
}

function fovArgs(settings) {
    const fov = finiteNumber(settings, "fov", 0);
    if (fov === 0) return [];
    if (fov < 1 || fov > 170) {
        throw new Error(`Portrait Relight: fov ${fov} must be 0 (automatic) or between 1 and 170 degrees`);
    }
    return ["--fov", String(fov)];
}

// Options the job sets itself; passing them again in extra_args would clash with (or silently override) them.
const RESERVED_OPTIONS = ["--out", "--frames", "--hdri", "--hdri-rotation", "--world-blend", "--background", "--fov"];

function extraArgs(settings) {
    const args = splitArgs(optionalString(settings, "extra_args"));
    for (const arg of args) {
        // argparse also accepts unambiguous prefixes ("--fr" for --frames), so those are refused too.
        const option = arg.split("=")[0];
        const clash = option.length > 2 && option.slice(0, 2) === "--" ?
            RESERVED_OPTIONS.filter((reserved) => reserved.indexOf(option) === 0) : [];
        if (clash.length) {
            throw new Error(`Portrait Relight: extra_args may not contain ${option}: the job sets ` +
                `${clash.join(" / ")} from its settings`);
        }
    }
    return args;
}

// Split a string into arguments the way a POSIX shell would for plain words: whitespace separates, single
// quotes are literal, double quotes allow \" and \\, a backslash outside quotes escapes the next character.
// Workers run Blender without a shell, so the list is passed as is.
function splitArgs(text) {
    const args = [];
    let current = "";
    let inWord = false;
    let quote = null;
    for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (quote === "'") {
            if (c === "'") quote = null; else current += c;
        } else if (quote === '"') {
            if (c === '"') quote = null;
            else if (c === "\\" && i + 1 < text.length && (text[i + 1] === '"' || text[i + 1] === "\\")) current += text[++i];
            else current += c;
        } else if (c === "'" || c === '"') {
            quote = c;
            inWord = true;
        } else if (c === "\\") {
            if (i + 1 >= text.length) throw new Error("Portrait Relight: extra_args ends with a lone backslash");
            current += text[++i];
            inWord = true;
        } else if (/\s/.test(c)) {
            if (inWord) args.push(current);
            current = "";
            inWord = false;
        } else {
            current += c;
            inWord = true;
        }
    }
    if (quote) throw new Error(`Portrait Relight: extra_args has an unclosed ${quote} quote`);
    if (inWord) args.push(current);
    return args;
}

// Parse a frame string ("1-240", "47", "1,5,9-12"; spaces around parts allowed) into sorted unique frame
// numbers. Ranges are inclusive. Throws an Error naming the string and the offending part.
function parseFrames(frames) {
    const text = typeof frames === "number" && isFinite(frames) ? String(frames) : frames;
    if (typeof text !== "string" || text.trim() === "") {
        throw new Error(`Portrait Relight: frames ${JSON.stringify(frames)} is empty; use e.g. "1-240" or "1,5,9-12"`);
    }
    const bad = (part, why) => new Error(`Portrait Relight: frames "${text}": "${part.trim()}" ${why}; ` +
        'use whole frame numbers, inclusive ranges "A-B" and commas, e.g. "1,5,9-12"');
    const seen = {};
    const list = [];
    for (const part of text.split(",")) {
        const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
        if (!match) throw bad(part, part.trim() === "" ? "is an empty part" : "is not a frame or range");
        const first = parseInt(match[1], 10);
        const last = match[2] === undefined ? first : parseInt(match[2], 10);
        if (last < first) throw bad(part, "runs backwards");
        if (list.length + (last - first + 1) > MAX_FRAMES) throw bad(part, `makes more than ${MAX_FRAMES} frames`);
        for (let f = first; f <= last; f++) {
            if (!seen[f]) {
                seen[f] = true;
                list.push(f);
            }
        }
    }
    list.sort((a, b) => a - b);
    return list;
}

// Format sorted frame numbers compactly: consecutive runs become "A-B", others stay single ("1,5,9-12").
function formatFrames(frames) {
    const parts = [];
    let start = 0;
    for (let i = 1; i <= frames.length; i++) {
        if (i === frames.length || frames[i] !== frames[i - 1] + 1) {
            const first = frames[start];
            const last = frames[i - 1];
            parts.push(first === last ? String(first) : `${first}-${last}`);
            start = i;
        }
    }
    return parts.join(",");
}

// Split the frames into consecutive groups of at most chunkSize frames (in frame order) and return each
// group formatted for `--frames`.
function chunkFrames(frames, chunkSize) {
    if (typeof chunkSize !== "number" || !isFinite(chunkSize) || Math.floor(chunkSize) !== chunkSize || chunkSize < 1) {
        throw new Error(`Portrait Relight: chunk_size ${JSON.stringify(chunkSize)} must be a whole number of at least 1`);
    }
    const list = parseFrames(frames);
    const chunks = [];
    for (let i = 0; i < list.length; i += chunkSize) {
        chunks.push(formatFrames(list.slice(i, i + chunkSize)));
    }
    return chunks;
}
