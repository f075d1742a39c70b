// SPDX-License-Identifier: GPL-3.0-or-later
//
// A stand-in for the parts of Flamenco Manager 3.x and Worker that a job compiler script touches, written
// from Flamenco's documentation (usage/job-types, usage/jobs-tasks-commands/commands) and its documented
// behaviour, so the job type can be tested under plain node without a Manager:
//
// * Loading: the Manager finds `scripts/<name>.js` beside its executable; the job type name is the file stem
//   with "_" -> "-". The script runs once per compile in a fresh JS VM (goja, strict mode) whose globals are
//   `author`, `print`, `alert`, `frameChunker`, `formatTimestampLocal`, `path` and `process`. It must define
//   `JOB_TYPE` (exported as plain data: label, description, settings) and `compileJob(job)`.
// * Authoring: `author.Task(name, type)` gives a task with `addCommand(cmd)` and `addDependency(task)`;
//   `author.Command(type, parameters)` a command; `job.addTask(task)` adds a copy of the task as it is at
//   that moment (the Manager stores a value, so commands added afterwards are lost - the stub copies too).
//   `job.settings` / `job.metadata` are the submitted maps. A thrown exception rejects the job.
// * Worker side: command parameters are stored as JSON; variables like `{blender}` are replaced per Worker;
//   `blender-render` runs `{exe} {exeArgs} {argsBefore} {blendfile} {args}` without a shell, with exeArgs
//   split shell-style and an empty blendfile left out. argsBefore/args must be lists of strings.
//
// Not modelled: the Manager's HTTP API, job/task state machines, scheduling, path variable platform
// mapping beyond a flat replacement, and the Blender add-on's evaluation of `eval` settings.

"use strict";

const fs = require("node:fs");
const nodePath = require("node:path");
const vm = require("node:vm");

const SETTING_TYPES = ["string", "int32", "float", "bool"];
const SETTING_SUBTYPES = ["file_path", "dir_path", "hashed_file_path"];
const SETTING_VISIBILITY = ["visible", "hidden", "submission", "web", true, false];

// Default two-way/one-way variables as a fresh Manager set-up assistant writes them on Linux.
const DEFAULT_VARIABLES = { blender: "blender", blenderArgs: "-b -y" };

function makeAuthor() {
    function Task(name, type) {
        if (typeof name !== "string" || name === "") throw new TypeError("author.Task: name must be a non-empty string");
        if (typeof type !== "string" || type === "") throw new TypeError("author.Task: type must be a non-empty string");
        const task = {
            name: name,
            type: type,
            priority: 50,
            commands: [],
            dependencies: [],
            addCommand(command) {
                if (!command || typeof command.type !== "string") {
                    throw new TypeError("task.addCommand: expects an author.Command(...)");
                }
                task.commands.push(command);
            },
            addDependency(other) {
                if (!other || typeof other.addCommand !== "function") {
                    throw new TypeError("task.addDependency: expects an author.Task(...)");
                }
                task.dependencies.push(other);
            },
        };
        return task;
    }
    function Command(type, parameters) {
        if (typeof type !== "string" || type === "") throw new TypeError("author.Command: type must be a non-empty string");
        if (parameters === null || typeof parameters !== "object" || Array.isArray(parameters)) {
            throw new TypeError("author.Command: parameters must be an object");
        }
        return { type: type, parameters: parameters };
    }
    return { Task: Task, Command: Command };
}

// `node:path`'s POSIX flavour is close enough to the Manager's `path` module (join, dirname, basename...).
const pathModule = {
    join: nodePath.posix.join,
    dirname: nodePath.posix.dirname,
    basename: nodePath.posix.basename,
    stem: (p) => nodePath.posix.basename(p, nodePath.posix.extname(p)),
};

function loadJobType(scriptPath) {
    const source = fs.readFileSync(scriptPath, "utf8");
    const jobTypeName = nodePath.basename(scriptPath, ".js").replace(/_/g, "-");
    const log = [];
    const globals = {
        author: makeAuthor(),
        print: (...args) => log.push(args.map(String).join(" ")),
        alert: (...args) => log.push("ALERT " + args.map(String).join(" ")),
        // The Manager has one; this job type must not depend on it (it has its own chunker), so calling it
        // here is a test failure rather than a guess at its exact output.
        frameChunker: () => { throw new Error("frameChunker() is not stubbed: the job type must not need it"); },
        formatTimestampLocal: (date) => date.toISOString().slice(0, 19).replace("T", "_").replace(/:/g, ""),
        path: pathModule,
        process: { platform: "linux" },
    };
    const context = vm.createContext(globals);
    // goja compiles job compiler scripts in strict mode; prepend on the same line to keep line numbers.
    new vm.Script('"use strict";' + source, { filename: scriptPath }).runInContext(context);
    const compileJob = vm.runInContext("typeof compileJob === 'function' ? compileJob : undefined", context);
    const jobTypeValue = vm.runInContext("typeof JOB_TYPE === 'undefined' ? undefined : JOB_TYPE", context);
    if (typeof compileJob !== "function") throw new Error(`${scriptPath}: no compileJob(job) function`);
    if (!jobTypeValue || typeof jobTypeValue !== "object") throw new Error(`${scriptPath}: no JOB_TYPE object`);
    // The Manager exports JOB_TYPE into its API type; JSON is the same plain-data view of it.
    const jobType = Object.assign({ name: jobTypeName }, JSON.parse(JSON.stringify(jobTypeValue)));
    return { name: jobTypeName, jobType: jobType, compileJob: compileJob, log: log, context: context };
}

// Problems a Manager / add-on would have with the settings schema (empty list = fine).
function schemaProblems(jobType) {
    const problems = [];
    if (typeof jobType.label !== "string" || !jobType.label) problems.push("JOB_TYPE.label missing");
    if (!Array.isArray(jobType.settings)) return problems.concat("JOB_TYPE.settings is not a list");
    const keys = new Set();
    for (const s of jobType.settings) {
        const where = `setting ${JSON.stringify(s.key)}`;
        if (typeof s.key !== "string" || !/^[a-z_][a-z0-9_]*$/.test(s.key)) problems.push(`${where}: bad key`);
        if (keys.has(s.key)) problems.push(`${where}: duplicate key`);
        keys.add(s.key);
        if (SETTING_TYPES.indexOf(s.type) < 0) problems.push(`${where}: type ${s.type} not in ${SETTING_TYPES}`);
        if (s.subtype !== undefined && SETTING_SUBTYPES.indexOf(s.subtype) < 0) problems.push(`${where}: bad subtype`);
        if (s.subtype !== undefined && s.type !== "string") problems.push(`${where}: subtype needs type string`);
        if (s.visible !== undefined && SETTING_VISIBILITY.indexOf(s.visible) < 0) problems.push(`${where}: bad visible`);
        if (s.choices !== undefined) {
            if (s.type !== "string") problems.push(`${where}: choices need type string`);
            if (!Array.isArray(s.choices) || !s.choices.every((c) => typeof c === "string")) {
                problems.push(`${where}: choices must be strings`);
            }
            if (s.default !== undefined && s.choices.indexOf(s.default) < 0) problems.push(`${where}: default not a choice`);
        }
        if (s.default !== undefined) {
            const ok = {
                string: typeof s.default === "string",
                int32: Number.isInteger(s.default),
                float: typeof s.default === "number",
                bool: typeof s.default === "boolean",
            }[s.type];
            if (!ok) problems.push(`${where}: default ${JSON.stringify(s.default)} is not a ${s.type}`);
        }
        if (s.eval !== undefined && typeof s.eval !== "string") problems.push(`${where}: eval must be a Python string`);
        if (s.description !== undefined && typeof s.description !== "string") problems.push(`${where}: bad description`);
    }
    return problems;
}

function copyTask(task) {
    return {
        name: task.name,
        type: task.type,
        priority: task.priority,
        commands: task.commands.slice(),
        dependencies: task.dependencies.slice(),
    };
}

// Compile a submitted job the way the Manager does: fresh VM, job object with settings/metadata/addTask.
function compile(scriptPath, settings, options) {
    const opts = options || {};
    const loaded = loadJobType(scriptPath);
    const tasks = [];
    const job = {
        name: opts.name || "sh010 relight",
        jobType: loaded.name,
        priority: 50,
        created: opts.created || new Date("2025-01-02T03:04:05Z"),
        settings: Object.assign({}, settings),
        metadata: Object.assign({}, opts.metadata || {}),
        addTask(task) {
            if (!task || typeof task.addCommand !== "function") throw new TypeError("job.addTask: expects an author.Task(...)");
            tasks.push(copyTask(task));
        },
    };
    loaded.compileJob(job);
    for (const task of tasks) {
        // The Manager stores commands as JSON; anything that would not survive (undefined, NaN, functions)
        // is a bug in the script. What the Worker receives is the JSON copy, so that is what is returned.
        task.commands = task.commands.map((command) => {
            jsonProblems(command.parameters, `task ${task.name}: command ${command.type} parameters`);
            const stored = { type: command.type, parameters: JSON.parse(JSON.stringify(command.parameters)) };
            if (stored.type === "blender-render") checkBlenderRender(task.name, stored.parameters);
            return stored;
        });
    }
    return { job: job, tasks: tasks, log: loaded.log };
}

function jsonProblems(value, where) {
    if (value === null || typeof value === "string" || typeof value === "boolean") return;
    if (typeof value === "number") {
        if (!isFinite(value)) throw new Error(`${where}: ${value} does not survive JSON`);
        return;
    }
    if (typeof value !== "object") throw new Error(`${where}: a ${typeof value} does not survive JSON`);
    for (const key of Object.keys(value)) jsonProblems(value[key], `${where}.${key}`);
}

// The Worker's parameter checks for `blender-render`.
function checkBlenderRender(taskName, p) {
    const isStrings = (v) => Array.isArray(v) && v.every((x) => typeof x === "string");
    const where = `task ${taskName}: blender-render`;
    if (typeof p.exe !== "string" || p.exe === "") throw new Error(`${where}: missing 'exe'`);
    if (p.exeArgs !== undefined && typeof p.exeArgs !== "string") throw new Error(`${where}: 'exeArgs' not a string`);
    if (!isStrings(p.argsBefore)) throw new Error(`${where}: 'argsBefore' not a list of strings`);
    if (typeof p.blendfile !== "string") throw new Error(`${where}: 'blendfile' not a string`);
    if (!isStrings(p.args)) throw new Error(`${where}: 'args' not a list of strings`);
}

function expandVariables(value, variables) {
    if (typeof value === "string") {
        return value.replace(/\{([A-Za-z0-9_]+)\}/g, (m, name) => (name in variables ? variables[name] : m));
    }
    if (Array.isArray(value)) return value.map((v) => expandVariables(v, variables));
    if (value && typeof value === "object") {
        const out = {};
        for (const k of Object.keys(value)) out[k] = expandVariables(value[k], variables);
        return out;
    }
    return value;
}

// Minimal shell-word splitting of exeArgs as the Worker does (quotes and backslashes).
function shellSplit(text) {
    const out = [];
    const re = /"((?:\\.|[^"\\])*)"|'([^']*)'|((?:\\.|[^\s"'\\])+)|(\s+)/g;
    let word = null;
    let m;
    while ((m = re.exec(text)) !== null) {
        if (m[4] !== undefined) {
            if (word !== null) out.push(word);
            word = null;
            continue;
        }
        const piece = m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") :
            m[2] !== undefined ? m[2] : m[3].replace(/\\(.)/g, "$1");
        word = (word || "") + piece;
    }
    if (word !== null) out.push(word);
    return out;
}

// argv the Worker would execute for a blender-render command, after variable expansion.
function blenderRenderArgv(command, variables) {
    if (command.type !== "blender-render") throw new Error(`not a blender-render command: ${command.type}`);
    const p = expandVariables(command.parameters, Object.assign({}, DEFAULT_VARIABLES, variables || {}));
    const argv = [p.exe].concat(shellSplit(p.exeArgs || ""), p.argsBefore);
    if (p.blendfile !== "") argv.push(p.blendfile);
    return argv.concat(p.args);
}

module.exports = {
    loadJobType, compile, schemaProblems, blenderRenderArgv, expandVariables, shellSplit, DEFAULT_VARIABLES,
};
