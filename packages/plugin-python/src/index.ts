export { PYTHON_ENGINE, PYTHON_SDK_DIR, pythonPlugin } from './python-plugin.js';
export { PYTHON_ENV, checkPythonEntry, pythonEntryOf } from './python-entry.js';
export type { PythonEntry } from './python-entry.js';
