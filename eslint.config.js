// `npm run lint`: typescript-eslint's strict, type-aware rules over every TypeScript file.
// Where a rule is tuned below, the comment says why; nothing is disabled in the code itself.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['**/dist/', '**/node_modules/', 'proto/src/gen/', 'bench/.work/', 'examples/python-worker/gen/', 'coverage/'] },
  js.configs.recommended,
  tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // noUncheckedIndexedAccess is on, so an index known to be in range needs `!`; a
      // checked access would only restate that with a throw that cannot happen.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Numbers in messages (`must be at most ${max}`) are what the messages are for.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // `() => resolve()` as a callback says what it does; wrapping it in braces says no more.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // A public method may take a type parameter only so that callers can check an
      // argument against their own type (`queue.enqueue<Upload>(job, upload)`).
      '@typescript-eslint/no-unnecessary-type-parameters': 'off',
    },
  },
  {
    // Plain JavaScript (scripts run by Node): no types to check, Node's globals.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' } },
  },
)
