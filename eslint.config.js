// ESLint flat config: @eslint/js recommended + typescript-eslint recommended over the project's code
// (`npm run lint`; test/structure/lint.test.ts runs it in `npm test`).
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    // Build outputs, run artefacts and the native/WGSL kernel sources are not linted.
    ignores: ['node_modules/**', 'runs/**', 'kernels/**', 'scratch/**', '.tmp/**', '**/build/**', '**/dist/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.node },
    },
    rules: {
      // Not in the `recommended` set, stated so a preset change cannot bring it in: `!` is used on purpose
      // for indexed typed-array and array access (tsconfig keeps noUncheckedIndexedAccess off; `!` marks the
      // reads whose bounds the surrounding loop guarantees).
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Unused bindings are errors, except where a leading `_` marks them as deliberately unused
      // (positional parameters of callbacks and interface implementations, skipped destructured items).
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
        },
      ],
    },
  },
  {
    // CommonJS config files (.dependency-cruiser.cjs).
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
  },
);
