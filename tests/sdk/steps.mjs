// What both SDK runs share: configuration from the environment, one JSON line per
// step ({"step", "ok", "detail"}), and a time bound on every wait.

export const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

export function report(step, ok, detail) {
  process.stdout.write(JSON.stringify({ step, ok, detail: detail ?? null }) + '\n');
}

export function describe(error) {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  if (error && typeof error === 'object') return JSON.stringify(error);
  return String(error);
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

export class StepFailed extends Error {}

// `bounded(promise, what)` rejects after `timeoutMs`; `step(name, fn)` runs one bounded
// step, reports it, and throws StepFailed when it fails.
export function stepper(timeoutMs) {
  function bounded(promise, what, ms = timeoutMs) {
    let timer;
    const guard = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    });
    return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
  }

  async function step(name, fn) {
    let detail;
    try {
      detail = await bounded(Promise.resolve().then(fn), name);
    } catch (error) {
      report(name, false, describe(error));
      throw new StepFailed(name);
    }
    report(name, true, detail);
    return detail;
  }

  return { bounded, step };
}
