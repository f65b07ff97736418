// Shared ESLint flat config for the monorepo (the root eslint.config.js re-exports it).
// typescript-eslint's recommended rules, plus the house rules from ../shared/STYLE.md that a linter can
// check: no unused variables (prefix _ to keep one on purpose), no floating promises in tests would need
// type information, so it is left to review.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/build/**', '**/node_modules/**', '**/.turbo/**', '**/*.wat', '**/bench-results/**', '.bundle*/**', '.carry/**', '**/.parity-carry/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off', // typed-array indexing in kernels: a[i]! is the idiom
    },
  },
);
