/** `@omnistage/plugin-python`: engine `python` for every stage type (a Python engine on the worker SDK). */
export { PYTHON_ENGINE, pythonPlugin } from './python-plugin.js';
