#!/usr/bin/env node
// The `stackshift` command; its code is built from cli/src (npm run build, npm start, npm test).
import '../dist/main.js'
