#!/usr/bin/env node
// Committed shim so `npx omnistage` links at `npm ci` time, before dist/ exists (see docs/architecture.md).
import '../dist/main.js';
