// ESLint over plugforge's code (part of `npm run lint`): ESLint's and typescript-eslint's
// recommended rules, for TypeScript and for the plain JavaScript scripts, over the whole repository.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'test-output/', '.data/'] },
  {
    files: ['**/*.{ts,js,mjs,cjs}'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: { globals: globals.node },
    rules: {
      // A leading underscore names what is there on purpose and unused: a field left out of a
      // copy by destructuring, the fourth argument that makes an Express error handler.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  // A CommonJS file (dependency-cruiser's configuration) loads its modules with require.
  { files: ['**/*.cjs'], rules: { '@typescript-eslint/no-require-imports': 'off' } },
  // The web page runs in the browser; web/copy-assets.mjs is a build step run by Node.
  { files: ['web/**/*.ts'], languageOptions: { globals: globals.browser } },
  {
    files: ['test/**/*.ts'],
    // Tests read JSON answers and poke at objects' insides; typing each answer would add noise, not checks.
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
