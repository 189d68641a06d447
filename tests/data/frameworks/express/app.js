// Express with its body parsers (urlencoded through `qs`, and JSON) and method-override
// reading `_method` from the body, as method-override's README shows, then from the query.
// Served by `node` in tests/framework_overrides.rs; the response body is the method the
// routes see.
const express = require('express');
const methodOverride = require('method-override');

const app = express();
app.use(express.urlencoded({ extended: true }));
app.use(express.json({ type: ['application/json', '+json'] }));
app.use(methodOverride(function (req) {
  if (req.body && typeof req.body === 'object' && '_method' in req.body) {
    const method = req.body._method;
    delete req.body._method;
    return method;
  }
}));
app.use(methodOverride('_method'));
app.all('*', (req, res) => res.type('text/plain').send(req.method));
app.listen(Number(process.argv[2]), '127.0.0.1');
